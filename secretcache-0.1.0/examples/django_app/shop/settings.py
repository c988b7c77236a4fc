"""Settings of the example project: the database credentials come from Secrets Manager.

Environment (all optional): ``APP_DB_ENGINE`` ``postgresql`` (default) or ``mysql``; ``APP_DB_SECRET_ID``
(default ``prod/app/db``, an RDS-shaped JSON secret: host, port, username, password, dbname);
``APP_DB_CONN_MAX_AGE`` seconds, or ``none`` for unlimited persistent connections (default 0);
``APP_DB_HEALTH_CHECKS`` ``1`` to turn on CONN_HEALTH_CHECKS; ``APP_DB_NAME`` to override the secret's dbname;
``APP_DB_TEST_NAME`` the test runner's database (``manage.py test``).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")  # nosec B105
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
INSTALLED_APPS = ["inventory"]
ROOT_URLCONF = "shop.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_max_age = os.environ.get("APP_DB_CONN_MAX_AGE", "0")

DATABASES = {
    "default": {
        "ENGINE": "secretcache.django." + os.environ.get("APP_DB_ENGINE", "postgresql"),
        # HOST, PORT, NAME, USER, PASSWORD: from the secret (any of them set here wins over it).
        "NAME": os.environ.get("APP_DB_NAME", ""),
        "CONN_MAX_AGE": None if _max_age.lower() == "none" else int(_max_age),
        "CONN_HEALTH_CHECKS": os.environ.get("APP_DB_HEALTH_CHECKS") == "1",
        # The test runner's database: set its name when NAME comes from the secret.
        "TEST": {"NAME": os.environ.get("APP_DB_TEST_NAME") or None},
        "OPTIONS": {
            "secret_id": os.environ.get("APP_DB_SECRET_ID", "prod/app/db"),
            "cache": "shop.caching.secrets",
        },
    }
}
