"""The ``serve`` subcommand: options, start-up checks, the serving loop and the SIGTERM drain."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

__all__ = ["add_parser", "run"]

log = logging.getLogger("secretcache.serve")

OK, USAGE = 0, 2
EVENTS_FAILED = 1  # the events listener stopped on a configuration error (logged at ERROR)
DEFAULT_PORT = 2773

_DESCRIPTION = """\
Serve the AWS Secrets Manager Agent's HTTP API from one cache, so every process on this host shares it:
GET /secretsmanager/get?secretId=ID (and versionId=V or versionStage=S, refreshNow=true, roleArn=ARN),
path style GET /v1/ID?..., GET /systemsmanager/parameters/get?name=NAME (and version=V or label=L) for
Parameter Store, GET /ping; roleArn reads through an assumed role (cached apart per role).
Requests carry the token in X-Aws-Parameters-Secrets-Token (or X-Vault-Token): --token-file, else the
first set of AWS_TOKEN, AWS_SESSION_TOKEN, AWS_CONTAINER_AUTHORIZATION_TOKEN (file://PATH reads it from
a file). Loopback only unless --host names another address, and then only
with a token. SIGTERM (or SIGINT) drains requests in flight and exits 0; with --events-queue, a
configuration error of the queue (no Region, no such queue, access denied) is logged and exits 1.
--region and --endpoint-url apply to the events queue too (a queue URL naming a Region is polled there)."""

_EPILOG = """\
examples:
  AWS_TOKEN=file:///var/run/awssmatoken secretcache serve --prefetch prod/db prod/api-key
  secretcache serve --unix-socket /run/secretcache.sock --ttl 60
  curl -H "X-Aws-Parameters-Secrets-Token: $TOKEN" 'localhost:2773/secretsmanager/get?secretId=prod/db'"""


def add_parser(commands: Any, aws_options: Any = None) -> argparse.ArgumentParser:
    """Add ``serve`` to the CLI's subparsers; ``aws_options`` adds the shared --region/--endpoint-url."""
    sub: argparse.ArgumentParser = commands.add_parser(
        "serve", help="share one cache between the processes of a host (the Secrets Manager Agent's API)",
        description=_wrapped(_DESCRIPTION), epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sub.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default 2773; 0: any free port)")
    sub.add_argument("--unix-socket", metavar="PATH", help="listen on this Unix socket instead of TCP "
                     "(clients: curl --unix-socket PATH, AgentBackend(unix_socket=PATH))")
    sub.add_argument("--unix-socket-mode", type=_octal_mode, metavar="MODE",
                     help="permissions of the socket file, in octal (e.g. 660: owner and group may connect); "
                          "default: as the umask leaves them")
    sub.add_argument("--prefetch", nargs="+", default=[], metavar="ID",
                     help="secrets to load at start; ID?roleArn=ARN reads one through an assumed role")
    sub.add_argument("--max-roles", type=int, default=20, metavar="N",
                     help="distinct roleArn values served (default 20, as the Agent); more are answered 400")
    sub.add_argument("--ttl", type=float, default=300.0, metavar="S", help="cache ttl in seconds (default 300)")
    sub.add_argument("--stale-while-revalidate", type=float, default=60.0, metavar="S",
                     help="seconds past ttl a read gets the cached value while one refresh runs (default 60)")
    sub.add_argument("--max-conn", type=int, default=800, metavar="N",
                     help="concurrent connections (default 800, as the Agent); more are answered 429")
    sub.add_argument("--idle-timeout", type=float, default=61.0, metavar="S",
                     help="close a connection idle this long (default 61, as the Agent)")
    sub.add_argument("--header-timeout", type=float, default=5.0, metavar="S",
                     help="close a connection whose request line and headers are not complete this long after "
                          "their first byte (default 5)")
    sub.add_argument("--token-file", metavar="F", help="read the token from this file")
    sub.add_argument("--events-queue", metavar="URL",
                     help="SQS queue of Secrets Manager events: refresh secrets when they change")
    sub.add_argument("--server", default="auto", choices=["auto", "uvicorn", "stdlib"],
                     help="HTTP front end: uvicorn with httptools (the [serve] extra), the only one; "
                          "'stdlib' (removed) is refused with a message")
    sub.add_argument("--metrics", action="store_true",
                     help="also answer GET /metrics (Prometheus text format, no token needed; the [metrics] "
                          "extra): requests by route and status, latency, the cache's counters, never a secret id")
    sub.add_argument("--log-level", default="INFO", type=_log_level, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                     help="level of the secretcache loggers on stderr, any case, WARN too (default INFO; "
                          "never a value)")
    if aws_options is not None:
        aws_options(sub)
    return sub


def _wrapped(text: str) -> str:
    """``text`` wrapped at the width argparse wraps the options at (the terminal's, less 2), so the whole
    help reads at one width; the epilog's examples stay as written."""
    import shutil
    import textwrap

    width = max(shutil.get_terminal_size().columns - 2, 40)
    return textwrap.fill(" ".join(text.split()), width=width, break_long_words=False, break_on_hyphens=False)


def _octal_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal mode: {text!r}") from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"not a permission mode (000-777): {text!r}")
    return mode


def _log_level(text: str) -> str:
    """``info``, ``INFO``, ``warn`` (uvicorn's lower case, the Agent's ``WARN``) as logging's level names."""
    level = text.strip().upper()
    return "WARNING" if level == "WARN" else level


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _fail(message: str, code: int = USAGE) -> int:
    sys.stderr.write(f"secretcache serve: error: {message}\n")
    sys.stderr.flush()
    return code


def run(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM/SIGINT; return the exit code (0 after a drain)."""
    from ..backends.aws import CommandLineAwsBackend
    from ..cache import SecretCache
    from ..config import CacheConfig
    from ._app import AgentApi, read_token

    if args.max_conn < 1 or args.max_conn > 10_000:
        return _fail(f"--max-conn must be 1..10000, got {args.max_conn}")
    if args.ttl < 0 or args.idle_timeout <= 0 or args.stale_while_revalidate < 0:
        return _fail("--ttl and --stale-while-revalidate must be >= 0, --idle-timeout > 0")
    if not 0 < args.header_timeout <= 600:
        return _fail(f"--header-timeout must be > 0 and <= 600 seconds, got {args.header_timeout:g}")
    if args.max_roles < 0:
        return _fail(f"--max-roles must be >= 0, got {args.max_roles}")
    try:
        prefetch = _prefetch_by_role(args.prefetch)
    except ValueError as e:
        return _fail(str(e))
    try:
        token = read_token(os.environ, args.token_file)
    except (OSError, ValueError) as e:
        return _fail(f"cannot read the token ({type(e).__name__}: {getattr(e, 'filename', None) or e})")
    if args.unix_socket is None and not _is_loopback(args.host) and token is None:
        return _fail(f"--host {args.host} is not a loopback address: refusing to serve secrets there without "
                     "a token (--token-file, or AWS_TOKEN / AWS_SESSION_TOKEN / AWS_CONTAINER_AUTHORIZATION_TOKEN)")
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("secretcache").setLevel(args.log_level)

    region, endpoint_url = getattr(args, "region", None), getattr(args, "endpoint_url", None)
    # The command's backend: a configuration error's advice names --region, not region_name=.
    backend = CommandLineAwsBackend(region_name=region, endpoint_url=endpoint_url)
    cache = SecretCache(backend, config=CacheConfig(ttl=args.ttl,
                                                    stale_while_revalidate=args.stale_while_revalidate))

    def role_cache(role_arn: str) -> SecretCache:
        """A cache reading through ``role_arn`` (ValueError when it is not a role ARN)."""
        role_backend = CommandLineAwsBackend(region_name=region, endpoint_url=endpoint_url, role_arn=role_arn)
        return SecretCache(role_backend, config=cache.config)

    api_class: type[AgentApi] = AgentApi
    try:
        if getattr(args, "metrics", False):
            from ._metrics import MeteredAgentApi

            api_class = MeteredAgentApi
        api = api_class(cache, token=token, role_cache=role_cache, max_roles=args.max_roles)
    except ImportError as e:  # --metrics without prometheus-client: the message names the [metrics] extra
        cache.close()
        return _fail(str(e))
    problem = _front_end_problem(args.server)
    if problem is not None:
        cache.close()
        return _fail(problem)
    bound: os.stat_result | None = None
    try:
        if args.unix_socket is not None:
            _claim_unix_path(args.unix_socket)
        sock = _listen(args.host, args.port, args.unix_socket)
        if args.unix_socket is not None:
            bound = os.stat(args.unix_socket)
        address: Any = sock.getsockname()
    except _PathTaken as e:
        cache.close()
        return _fail(str(e))
    except OSError as e:
        cache.close()
        return _fail(f"cannot listen ({type(e).__name__}: {e.strerror or e})", 1)
    if args.unix_socket and args.unix_socket_mode is not None:
        # Connecting needs write permission on the socket file: the mode decides who may, set before serving.
        os.chmod(args.unix_socket, args.unix_socket_mode)
    where = args.unix_socket or (f"{address[0]!s}:{address[1]}" if isinstance(address, tuple) else str(address))
    server_kind = "uvicorn"

    def started() -> None:
        log.info("serve: started (%s; token %s, ttl %gs, max %d connections)", server_kind,
                 "required" if token is not None else "header required, any value (loopback, none configured)",
                 args.ttl, args.max_conn)
        sys.stderr.write(f"secretcache serve: listening on {where}\n")  # once, and the line scripts wait for
        sys.stderr.flush()

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    listener = None
    events_failed = threading.Event()

    def events_failure(_: BaseException) -> None:
        # The listener logged the ERROR with advice; stop serving as a SIGTERM would (uvicorn
        # drains on it), and exit non-zero: a supervisor sees the configuration is wrong.
        events_failed.set()
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        for role_arn, secret_ids in prefetch.items():
            try:
                failures = api.cache_for(role_arn).prefetch(secret_ids)
            except ValueError as e:  # past --max-roles
                log.warning("serve: prefetch through role %s skipped: %s", role_arn, e)
                continue
            for secret_id, error in failures.items():
                # the error's message: ids, codes, advice; no value
                log.warning("serve: prefetch of secret %r%s failed: %s: %s", secret_id,
                            f" through role {role_arn}" if role_arn else "", type(error).__name__, error)
        if args.events_queue:
            from ..events import EventListener

            listener = EventListener(args.events_queue, caches=[cache], region_name=region,
                                     endpoint_url=endpoint_url, on_failure=events_failure)
            listener.region_advice = "pass --region"
            listener.start()
        from ._asgi import run_uvicorn

        if not stop.is_set():  # uvicorn takes SIGTERM/SIGINT over while it runs, then drains
            run_uvicorn(api, sock, max_conn=args.max_conn, idle_timeout=args.idle_timeout,
                        header_timeout=args.header_timeout, on_started=started)
        return EVENTS_FAILED if events_failed.is_set() else OK
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if listener is not None:
            listener.close(timeout=1.0)  # a long poll in flight is abandoned (daemon thread)
        if bound is not None:
            _remove_own_socket(args.unix_socket, bound)
        api.close()
        cache.close()
        log.info("serve: stopped")


def _prefetch_by_role(entries: list[str]) -> dict[str | None, list[str]]:
    """``--prefetch`` entries grouped by role (None: serve's own credentials); ``ID?roleArn=ARN`` names a
    role, as the HTTP API does. ValueError naming the entry when it is not one of the two forms."""
    from urllib.parse import parse_qsl

    from ..backends.aws import AwsBackend

    grouped: dict[str | None, list[str]] = {}
    for entry in entries:
        secret_id, mark, query = entry.partition("?")
        role: str | None = None
        if mark:
            pairs = parse_qsl(query, keep_blank_values=True)
            if not secret_id or len(pairs) != 1 or pairs[0][0] != "roleArn":
                raise ValueError(f"--prefetch {entry!r}: expected ID or ID?roleArn=ARN")
            role = pairs[0][1]
            try:
                AwsBackend(role_arn=role)  # checks the ARN's form; nothing is called
            except ValueError as e:
                raise ValueError(f"--prefetch {entry!r}: {e}") from None
        grouped.setdefault(role, []).append(secret_id)
    return grouped


def _front_end_problem(choice: str) -> str | None:
    """Why serve cannot run its HTTP front end (uvicorn with httptools, the [serve] extra), or None.

    The standard library's threading server was the fallback until it was measured (docs/serve.md): 1.6 to
    3.7 times fewer reads/s and a p99 of 60-220 ms against uvicorn's 10-15 ms, and a second HTTP parser to
    harden (it read no request bodies). One well-kept parser faces the network now.
    """
    if choice == "stdlib":
        return ("--server stdlib was removed (docs/serve.md, 'The HTTP server'): serve runs on uvicorn, "
                "pip install 'secretcache[serve]'")
    try:
        import uvicorn  # noqa: F401
        from uvicorn.protocols.http import httptools_impl  # noqa: F401
    except ImportError:
        return "serve needs the [serve] extra (uvicorn and httptools): pip install 'secretcache[serve]'"
    return None


class _PathTaken(Exception):
    """The ``--unix-socket`` path is in use or is not ours to replace (exit 2, the message says why)."""


def _claim_unix_path(path: str) -> None:
    """Make ``path`` free for ``bind``: a socket file nobody listens on (left by a killed serve) is
    removed; a live socket, or anything that is not a socket, raises :class:`_PathTaken` untouched."""
    import stat

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise _PathTaken(f"--unix-socket {path}: the path exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except ConnectionRefusedError:  # a leftover: nobody accepts on it
        pass
    except OSError as e:
        raise _PathTaken(f"--unix-socket {path}: cannot tell whether a server listens there "
                         f"({type(e).__name__}); not replacing it") from None
    else:
        raise _PathTaken(f"--unix-socket {path}: another server is listening on this socket")
    finally:
        probe.close()
    log.info("serve: removing the stale socket file %s (nobody listens on it)", path)
    os.unlink(path)


def _remove_own_socket(path: str, bound: os.stat_result) -> None:
    """At exit: remove the socket file we bound, not one another serve put there since."""
    with contextlib.suppress(OSError):
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == (bound.st_dev, bound.st_ino):
            os.unlink(path)


def _listen(host: str, port: int, unix_socket: str | None) -> socket.socket:
    if unix_socket is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(unix_socket)
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    sock.listen(2048)
    return sock
