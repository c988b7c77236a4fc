"""Database connection factories (psycopg, PyMySQL, SQLAlchemy), the rotation retry policy, the local servers."""
