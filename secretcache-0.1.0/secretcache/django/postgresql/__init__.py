"""``ENGINE = "secretcache.django.postgresql"``: Django's PostgreSQL backend (psycopg 3), credentials from a secret."""
