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
import time
from typing import Any

__all__ = ["add_parser", "run"]

log = logging.getLogger("secretcache.serve")

OK, USAGE = 0, 2
DEFAULT_PORT = 2773

_DESCRIPTION = """\
Serve the AWS Secrets Manager Agent's HTTP API from one cache, so every process on this host shares it:
GET /secretsmanager/get?secretId=ID[&versionId=V|&versionStage=S][&refreshNow=true][&roleArn=ARN], path
style GET /v1/ID?..., GET /ping. roleArn reads through an assumed role (cached apart per role).
Requests carry the token in X-Aws-Parameters-Secrets-Token (or X-Vault-Token): --token-file, else the
first set of AWS_TOKEN, AWS_SESSION_TOKEN, AWS_CONTAINER_AUTHORIZATION_TOKEN (file://PATH reads it from
a file). Loopback only unless --host names another address, and then only
with a token. SIGTERM (or SIGINT) drains requests in flight and exits 0."""

_EPILOG = """\
examples:
  AWS_TOKEN=file:///var/run/awssmatoken secretcache serve --prefetch prod/db prod/api-key
  secretcache serve --unix-socket /run/secretcache.sock --ttl 60
  curl -H "X-Aws-Parameters-Secrets-Token: $TOKEN" 'localhost:2773/secretsmanager/get?secretId=prod/db'"""


def add_parser(commands: Any, aws_options: Any = None) -> argparse.ArgumentParser:
    """Add ``serve`` to the CLI's subparsers; ``aws_options`` adds the shared --region/--endpoint-url."""
    sub: argparse.ArgumentParser = commands.add_parser(
        "serve", help="share one cache between the processes of a host (the Secrets Manager Agent's API)",
        description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sub.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default 2773; 0: any free port)")
    sub.add_argument("--unix-socket", metavar="PATH", help="listen on this Unix socket instead of TCP")
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
    sub.add_argument("--token-file", metavar="F", help="read the token from this file")
    sub.add_argument("--events-queue", metavar="URL",
                     help="SQS queue of Secrets Manager events: refresh secrets when they change")
    sub.add_argument("--server", default="auto", choices=["auto", "uvicorn", "stdlib"],
                     help="HTTP front end: uvicorn when installed (the [serve] extra, the default), "
                          "else the standard library's")
    sub.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                     help="level of the secretcache loggers on stderr (default INFO; never a value)")
    if aws_options is not None:
        aws_options(sub)
    return sub


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
    from ..backends.aws import AwsBackend
    from ..cache import SecretCache
    from ..config import CacheConfig
    from ._app import AgentApi, read_token
    from ._http import make_server

    if args.max_conn < 1 or args.max_conn > 10_000:
        return _fail(f"--max-conn must be 1..10000, got {args.max_conn}")
    if args.ttl < 0 or args.idle_timeout <= 0 or args.stale_while_revalidate < 0:
        return _fail("--ttl and --stale-while-revalidate must be >= 0, --idle-timeout > 0")
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
    backend = AwsBackend(region_name=region, endpoint_url=endpoint_url)
    cache = SecretCache(backend, config=CacheConfig(ttl=args.ttl,
                                                    stale_while_revalidate=args.stale_while_revalidate))

    def role_cache(role_arn: str) -> SecretCache:
        """A cache reading through ``role_arn`` (ValueError when it is not a role ARN)."""
        role_backend = AwsBackend(region_name=region, endpoint_url=endpoint_url, role_arn=role_arn)
        return SecretCache(role_backend, config=cache.config)

    api = AgentApi(cache, token=token, role_cache=role_cache, max_roles=args.max_roles)
    server_kind = _server_kind(args.server)
    if server_kind is None:
        cache.close()
        return _fail("--server uvicorn needs the [serve] extra: pip install 'secretcache[serve]'")
    try:
        if server_kind == "uvicorn":
            sock = _listen(args.host, args.port, args.unix_socket)
            address: Any = sock.getsockname()
        else:
            server = make_server(api, host=args.host, port=args.port, unix_socket=args.unix_socket,
                                 max_conn=args.max_conn, idle_timeout=args.idle_timeout)
            address = server.server_address
    except OSError as e:
        cache.close()
        return _fail(f"cannot listen ({type(e).__name__}: {e.strerror or e})", 1)
    where = args.unix_socket or (f"{address[0]!s}:{address[1]}" if isinstance(address, tuple) else str(address))

    def started() -> None:
        log.info("serve: listening on %s (%s; token %s, ttl %gs, max %d connections)", where, server_kind,
                 "required" if token is not None else "header required, any value (loopback, none configured)",
                 args.ttl, args.max_conn)
        sys.stderr.write(f"secretcache serve: listening on {where}\n")
        sys.stderr.flush()

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    listener = None
    try:
        for role_arn, secret_ids in prefetch.items():
            try:
                failures = api.cache_for(role_arn).prefetch(secret_ids)
            except ValueError as e:  # past --max-roles
                log.warning("serve: prefetch through role %s skipped: %s", role_arn, e)
                continue
            for secret_id, error in failures.items():
                log.warning("serve: prefetch of secret %r%s failed: %s", secret_id,
                            f" through role {role_arn}" if role_arn else "", type(error).__name__)
        if args.events_queue:
            from ..events import EventListener

            listener = EventListener(args.events_queue, caches=[cache])
            listener.start()
        if server_kind == "uvicorn":
            from ._asgi import run_uvicorn

            if not stop.is_set():  # uvicorn takes SIGTERM/SIGINT over while it runs, then drains
                run_uvicorn(api, sock, max_conn=args.max_conn, idle_timeout=args.idle_timeout, on_started=started)
            return OK
        # 64 connection threads share the GIL: a shorter switch interval than the default 5 ms bounds
        # how long a ready reader waits behind another.
        sys.setswitchinterval(0.001)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                  name="secretcache-serve", daemon=True)
        thread.start()
        started()
        while not stop.wait(0.5):
            pass
        log.info("serve: draining %d connection(s)", server.connections)
        server.shutdown()
        if not server.drain(time.monotonic() + 10.0):
            log.warning("serve: connections still open after the 10 s drain; closing")
        return OK
    finally:
        if server_kind == "uvicorn":
            sock.close()
        else:
            server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if listener is not None:
            listener.close(timeout=1.0)  # a long poll in flight is abandoned (daemon thread)
        if args.unix_socket:
            with contextlib.suppress(OSError):
                os.unlink(args.unix_socket)
        api.close()
        cache.close()


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


def _server_kind(choice: str) -> str | None:
    """The front end: uvicorn when installed (the [serve] extra) unless stdlib is asked for."""
    if choice == "stdlib":
        return "stdlib"
    try:
        import uvicorn  # noqa: F401
        from uvicorn.protocols.http import httptools_impl  # noqa: F401
    except ImportError:
        if choice == "uvicorn":
            return None
        log.warning("serve: uvicorn and httptools not installed (pip install 'secretcache[serve]'): "
                    "using the standard library's server (slower, with a longer tail: docs/serve.md)")
        return "stdlib"
    return "uvicorn"


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
