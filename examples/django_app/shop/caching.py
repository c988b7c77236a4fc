"""The project's secret cache, named by ``DATABASES[...]["OPTIONS"]["cache"]`` as ``"shop.caching.secrets"``.

The ttl can be long: a rotated password is noticed when the database refuses it (the rotation policy then
refreshes the secret at once), not when the ttl runs out. Secrets Manager is reached through the usual AWS
configuration (``AWS_REGION`` or ``AWS_DEFAULT_REGION``, credentials, ``AWS_ENDPOINT_URL_SECRETS_MANAGER``
for a local stand-in).
"""

import os

from secretcache import CacheConfig, SecretCache

secrets = SecretCache(config=CacheConfig(ttl=float(os.environ.get("APP_SECRET_TTL", "3600"))))
