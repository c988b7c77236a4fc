"""``ENGINE = "secretcache.django.mysql"``: Django's MySQL/MariaDB backend (mysqlclient), credentials from a secret."""
