"""Rotation functions for Secrets Manager database secrets: the 4-step protocol and its strategies.

Use as a Lambda function (``handler = "secretcache.rotation.handler"``), or drive a rotation in process
(tests, the demo, scripts) with :func:`rotate_secret_now`::

    from secretcache.rotation import PostgresSingleUser, rotate_secret_now
    rotate_secret_now(boto3.client("secretsmanager"), "prod/db", PostgresSingleUser())

Strategies: :class:`PostgresSingleUser`, :class:`PostgresAlternatingUsers`, :class:`MySQLSingleUser`,
:class:`MySQLAlternatingUsers` (MySQL and MariaDB), :class:`RedshiftSingleUser`,
:class:`RedshiftAlternatingUsers`. Importing this package imports neither boto3 nor a
database driver; they load when used.
"""

from ._strategy import (
    AlternatingUsers,
    DatabaseStrategy,
    RotationError,
    RotationStrategy,
    SecretFields,
    SingleUser,
    StepContext,
    alternate_username,
)
from .mysql import MySQLAlternatingUsers, MySQLSingleUser
from .passwords import PasswordPolicy, generate_password
from .postgres import PostgresAlternatingUsers, PostgresSingleUser
from .protocol import STEPS, RotationHandler, handler, read_json_secret, rotate_secret_now, strategy_for
from .redshift import RedshiftAlternatingUsers, RedshiftSingleUser

__all__ = [
    "STEPS",
    "AlternatingUsers",
    "DatabaseStrategy",
    "MySQLAlternatingUsers",
    "MySQLSingleUser",
    "PasswordPolicy",
    "PostgresAlternatingUsers",
    "PostgresSingleUser",
    "RedshiftAlternatingUsers",
    "RedshiftSingleUser",
    "RotationError",
    "RotationHandler",
    "RotationStrategy",
    "SecretFields",
    "SingleUser",
    "StepContext",
    "alternate_username",
    "generate_password",
    "handler",
    "read_json_secret",
    "rotate_secret_now",
    "strategy_for",
]
