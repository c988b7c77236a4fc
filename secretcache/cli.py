"""The ``secretcache`` command (also ``python -m secretcache``): ``get``, ``run`` and ``demo``.

Exit codes: 0 success; 1 a secret could not be resolved (the message on stderr names the variable and
the reference, never a value); 2 usage error (bad options, a malformed reference or ``--env`` on the
command line, an unreadable env file, ``--`` missing); ``run`` otherwise returns the command's own
exit code, 128+N when a signal N killed it, 126/127 when it could not be started.

``get`` prints the value to stdout: it is the one place secretcache shows a value, on purpose, and only
there. Nothing else this command prints contains one.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import InvalidReferenceError, SecretCacheError

if TYPE_CHECKING:
    import subprocess  # types only  # nosec B404

    from .cache import SecretCache

__all__ = ["main"]

PROG = "secretcache"
OK, NOT_RESOLVED, USAGE = 0, 1, 2

_DESCRIPTION = """\
Read secrets from AWS Secrets Manager (and parameters from Parameter Store), or run a command with
them in its environment.

References (wherever a secret is named):
  prod/db                      a secret by name (or a full / partial ARN)
  prod/db#password             one top-level key of a JSON secret
  arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:json-key:version-stage:version-id]
                               the ECS / AWS Batch valueFrom form
  {{resolve:secretsmanager:prod/db:SecretString:password}}
                               the CloudFormation form, also inside a longer value
  ssm:/app/db-url[:VERSION|:LABEL][#json-key]
                               a Parameter Store parameter (SecureString decrypted)
  arn:aws:ssm:REGION:ACCOUNT:parameter/NAME[#json-key]
                               a parameter by ARN (the ECS valueFrom form)
  {{resolve:ssm:NAME[:VERSION]}}, {{resolve:ssm-secure:NAME[:VERSION]}}
                               CloudFormation's parameter forms

Credentials and Region come from the usual AWS chain (environment, ~/.aws, instance role);
AWS_ENDPOINT_URL_SECRETS_MANAGER (AWS_ENDPOINT_URL_SSM for parameters) points it at another endpoint
(a local emulator, say)."""

_EPILOG = """\
examples:
  secretcache get prod/db#password
  secretcache run --env DB_PASSWORD=prod/db#password -- python app.py
  secretcache run --env DB_URL=ssm:/app/prod/db-url -- python app.py
  secretcache run --env-file .env -- ./manage.py migrate
  DB_URL='postgres://app:{{resolve:secretsmanager:prod/db:SecretString:password}}@db/app' \\
      secretcache run -- python app.py
  secretcache demo                 # a tour that needs no AWS account

exit codes: 0 ok, 1 a secret could not be resolved, 2 usage error; run returns the command's code."""

_RUN_DESCRIPTION = """\
Run COMMAND with secrets resolved into its environment.

The environment COMMAND gets is this one, plus the variables of each --env-file (in order, later
files win), plus each --env (which win over files). Values that hold a reference are resolved:
an ECS valueFrom ARN (arn:aws:secretsmanager:... or arn:aws:ssm:...:parameter/...) or
{{resolve:secretsmanager|ssm|ssm-secure:...}}, also inside a longer value. Other values pass through
untouched (a bare ssm:NAME value too). An --env value is always a reference, in any form
(prod/db#password, ssm:/app/db-url too). All referenced secrets are fetched together
(BatchGetSecretValue; GetParameters for parameters).

If any reference cannot be resolved, COMMAND is not started: exit 1, and the message names the
variable and the reference (never a value). COMMAND's stdin, stdout and stderr are this process's;
its exit code is returned; SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on to it."""

_RUN_EPILOG = """\
examples:
  secretcache run --env DB_PASSWORD=prod/db#password -- python app.py
  secretcache run --env-file .env --env-file .env.local -- ./server --port 8080
  secretcache run --no-override --env-file .env -- env   # variables already set win

env files: NAME=value lines, 'export NAME=value', # comments, 'single' and "double" quotes
(\\n and friends in double quotes), no ${VAR} expansion. The -- before COMMAND is required."""


class _UsageError(Exception):
    """A problem with what the user typed: exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


def _build_parser() -> tuple[_Parser, _Parser]:
    from ._version import __version__

    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog=PROG, description=_DESCRIPTION, epilog=_EPILOG, formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def aws_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--region", metavar="R",
                         help="AWS Region (default: the usual AWS configuration chain)")
        sub.add_argument("--endpoint-url", metavar="U",
                         help="Secrets Manager endpoint URL (e.g. a local emulator)")

    get = commands.add_parser(
        "get", help="print one secret value to stdout", formatter_class=formatter,
        description="Print the value REFERENCE points at to stdout (bytes as they are for a binary secret).",
        epilog="examples:\n  secretcache get prod/api-key\n  secretcache get prod/db#password"
               "\n  secretcache get prod/db --version-stage AWSPREVIOUS\n"
               "  export PGPASSWORD=\"$(secretcache get prod/db#password)\"",
    )
    get.add_argument("reference", metavar="REFERENCE",
                     help="what to read: prod/db, prod/db#password, an ARN, ...")
    get.add_argument("--version-stage", metavar="S", help="read this staging label (default AWSCURRENT)")
    get.add_argument("--version-id", metavar="V", help="read this exact version")
    get.add_argument("-n", "--no-newline", action="store_true",
                     help="do not print a newline after a text value")
    aws_options(get)

    run: _Parser = commands.add_parser(
        "run", help="run a command with secrets in its environment", formatter_class=formatter,
        usage=f"{PROG} run [--env NAME=REFERENCE]... [--env-file FILE]... [--no-override] "
              "-- COMMAND [ARGS...]",
        description=_RUN_DESCRIPTION, epilog=_RUN_EPILOG,
    )
    run.add_argument("--env", action="append", default=[], metavar="NAME=REFERENCE",
                     help="set NAME to the secret REFERENCE points at (repeatable)")
    run.add_argument("--env-file", action="append", default=[], metavar="FILE",
                     help="read variables from FILE (repeatable; references in values are resolved)")
    run.add_argument("--no-override", action="store_true",
                     help="variables already set in the environment keep their values")
    aws_options(run)

    commands.add_parser("demo", help="a guided tour on a fresh machine (no AWS account needed)",
                        add_help=False)
    from .serve._main import add_parser as add_serve_parser

    add_serve_parser(commands, aws_options)
    return parser, run


# -- backends -----------------------------------------------------------------------------------


def _cache(args: argparse.Namespace) -> SecretCache:
    from ._envconfig import backend_from_environment
    from ._face import backend_factory
    from .cache import SecretCache
    from .config import CacheConfig

    # One short-lived process: no background refresh threads. The backend (and boto3) is built on the
    # first fetch, so `run` without references never imports boto3.
    backend = backend_factory(region_name=args.region, endpoint_url=args.endpoint_url, command_line=True)
    # SECRETCACHE_BACKEND (files, the agent, a chain) as for the default cache; its "aws" is this one.
    configured = backend_from_environment(aws=backend) if callable(backend) else None
    return SecretCache.with_backend_factory(configured or backend, config=CacheConfig(background_refresh=False))


def _fail(message: str, code: int = NOT_RESOLVED) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()
    return code


def _unexpected(error: Exception) -> int:
    # Not one of ours: its text was not written with secrets in mind, so name only its type.
    return _fail(f"unexpected {type(error).__name__} while resolving secrets")


# -- get ----------------------------------------------------------------------------------------


def _get(args: argparse.Namespace) -> int:
    from .model import SecretRef

    try:
        ref = SecretRef.parse(args.reference)
    except InvalidReferenceError as e:
        return _fail(str(e), USAGE)
    stage = args.version_stage or ref.version_stage
    version_id = args.version_id or ref.version_id
    if (args.version_stage and ref.version_stage) or (args.version_id and ref.version_id):
        return _fail("the reference already names a version; drop --version-stage / --version-id", USAGE)
    try:
        value = _cache(args).get_secret_value(ref.secret_id, version_id=version_id, version_stage=stage)
        if ref.json_key is None and value.secret_binary is not None:
            sys.stdout.flush()
            sys.stdout.buffer.write(value.secret_binary)
            sys.stdout.buffer.flush()
            return OK
        text = value.text(ref.json_key)
    except SecretCacheError as e:
        return _fail(str(e))
    except Exception as e:
        return _unexpected(e)
    sys.stdout.write(text if args.no_newline else text + "\n")
    sys.stdout.flush()
    return OK


# -- run ----------------------------------------------------------------------------------------


def _child_environment(args: argparse.Namespace) -> dict[str, str]:
    """The command's environment, references resolved. Raises _UsageError or SecretCacheError."""
    from ._envfile import EnvFileError, read_env_file
    from .env import resolve_values
    from .refs import parse_reference

    added: dict[str, str] = {}
    for path in args.env_file:
        try:
            added.update(read_env_file(path))
        except EnvFileError as e:
            raise _UsageError(str(e)) from None
    explicit: set[str] = set()
    for item in args.env:
        name, sep, reference = item.partition("=")
        if not sep or not name or not reference:
            raise _UsageError(f"--env takes NAME=REFERENCE, got {item!r}")
        try:
            parse_reference(reference)
        except InvalidReferenceError as e:
            raise _UsageError(f"--env {name}: {e}") from None
        added[name] = reference
        explicit.add(name)
    environment = dict(os.environ)
    for name, value in added.items():
        if args.no_override and name in environment:
            explicit.discard(name)
            continue
        environment[name] = value
    return resolve_values(environment, explicit=explicit, cache=_cache(args))


_FORWARDED = tuple(
    sig for sig in (getattr(signal, name, None) for name in
                    ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"))
    if sig is not None
)
_FROM_TERMINAL = tuple(
    sig for sig in (getattr(signal, "SIGINT", None), getattr(signal, "SIGQUIT", None)) if sig is not None
)


def _terminal_sent_it_to_the_child() -> bool:
    """True when we run in the foreground of a terminal: then Ctrl-C / Ctrl-\\ reached the child already
    (the terminal signals the whole foreground process group), and forwarding would deliver it twice."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
        except (AttributeError, OSError, ValueError):
            continue
    return False


def _run_command(command: list[str], environment: dict[str, str]) -> int:
    import subprocess  # runs the user's command (secretcache run)  # nosec B404

    child: subprocess.Popen[bytes] | None = None
    early: list[int] = []

    def forward(signum: int, frame: object) -> None:
        if child is None:
            early.append(signum)
        elif not (signum in _FROM_TERMINAL and _terminal_sent_it_to_the_child()):
            child.send_signal(signum)  # a no-op once the child is gone

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        if early:  # interrupted while setting up: do not start the command at all
            environment.clear()
            return 128 + early[0]
        try:
            child = subprocess.Popen(command, env=environment)  # the user's own argv, no shell  # nosec B603
        except FileNotFoundError:
            return _fail(f"command not found: {command[0]!r}", 127)
        except PermissionError:
            return _fail(f"permission denied: {command[0]!r}", 126)
        except OSError as e:
            return _fail(f"cannot run {command[0]!r}: {e.strerror or type(e).__name__}", 126)
        finally:
            environment.clear()  # the values live on in the child only
        for signum in early:
            forward(signum, None)
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code  # killed by signal N: 128+N, as shells report it


def _run(args: argparse.Namespace, command: list[str] | None, run_parser: _Parser) -> int:
    if not command:
        run_parser.print_usage(sys.stderr)
        what = "put -- before the command" if command is None else "give a command after --"
        return _fail(f"{what}, e.g.: {PROG} run --env-file .env -- python app.py", USAGE)
    try:
        environment = _child_environment(args)
    except _UsageError as e:
        return _fail(str(e), USAGE)
    except SecretCacheError as e:  # including a malformed reference found in the environment or a file
        return _fail(str(e))
    except Exception as e:
        return _unexpected(e)
    return _run_command(command, environment)


# -- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:  # Ctrl-C before a command started: no traceback, the shell's code
        sys.stderr.write("\n")
        return 128 + int(signal.SIGINT)


def _main(argv: list[str]) -> int:
    if argv and argv[0] == "demo":
        from .demo import main as demo_main

        return int(demo_main(argv[1:]) or 0)
    command: list[str] | None = None
    if argv and argv[0] == "run" and "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:]
    parser, run_parser = _build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not (args.command == "run" and command is None):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # --help, --version and usage errors
        return e.code if isinstance(e.code, int) else USAGE
    if args.command == "get":
        return _get(args)
    if args.command == "serve":
        from .serve import run as serve

        return serve(args)
    return _run(args, command, run_parser)
