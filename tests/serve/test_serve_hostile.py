"""``secretcache serve`` against hostile clients, over raw sockets: request smuggling through bodies,
slow-byte clients holding slots, malformed request targets, and a Unix socket left behind by a killed
serve. The front end is uvicorn with httptools (the only one: docs/serve.md, "The HTTP server")."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.faults import FaultProxy
from tests.fixtures.fix_canary import CANARY, canary_value
from tests.fixtures.fix_serve import unique
from tests.fixtures.serving import TOKEN, Serve, serve_env, serving

pytestmark = pytest.mark.integration

H = "X-Aws-Parameters-Secrets-Token"


@pytest.fixture(scope="module")
def served(proxy: FaultProxy) -> Iterator[Serve]:
    with serving(proxy.url, "--header-timeout", "2") as server:
        yield server


@pytest.fixture(scope="module")
def secret(admin: Any, served: Serve) -> tuple[str, str]:
    name, value = unique("hostile"), canary_value("smuggled")
    admin.create_secret(Name=name, SecretString=value)
    status, _ = served.request(f"/v1/{name}")  # cached: a smuggled read would answer at once
    assert status == 200
    return name, value


def read_response(reader: Any) -> tuple[int, bytes]:
    """One HTTP/1.1 response (status line, headers, a Content-Length body) from a buffered reader."""
    status_line = reader.readline(65536)
    if not status_line:
        raise AssertionError("the connection closed before a response")
    status = int(status_line.split()[1])
    length = 0
    while (line := reader.readline(65536)) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, reader.read(length)


def exchange(port: int, data: bytes, *, expect: int, timeout: float = 10.0) -> tuple[list[tuple[int, bytes]], bytes]:
    """Send ``data`` on one connection, read ``expect`` responses, then whatever else comes within a short
    wait: (the responses as (status, body), the raw bytes that followed them, ending ``<EOF>`` when the
    server closed the connection; empty when it kept it open and sent nothing more)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(data)
        reader = sock.makefile("rb")
        responses = [read_response(reader) for _ in range(expect)]
        sock.settimeout(1.0)
        rest = b""
        try:
            while chunk := reader.read1(65536):
                rest += chunk
            rest += b"<EOF>"  # the server closed the connection
        except (TimeoutError, OSError):
            pass
        return responses, rest
    finally:
        sock.close()


def smuggled(name: str) -> bytes:
    """A complete request for the secret with a valid token: what a body-only forgery would carry."""
    return f"GET /v1/{name} HTTP/1.1\r\nHost: x\r\n{H}: {TOKEN}\r\n\r\n".encode()


PING = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"


# -- 1. a request's bytes are parsed once ---------------------------------------------------------------

def test_a_content_length_body_holding_a_request_is_never_answered(served: Serve, secret: tuple[str, str]) -> None:
    name, _ = secret
    body = smuggled(name)
    data = b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body + PING
    responses, rest = exchange(served.port, data, expect=2)
    assert [status for status, _ in responses] == [405, 200]
    assert responses[1][1] == b"healthy"  # the request after the body, not the body
    assert rest == b""  # no third answer
    assert CANARY not in repr(responses)


def test_a_get_with_a_body_holding_a_request_is_answered_once(served: Serve, secret: tuple[str, str]) -> None:
    name, _ = secret
    body = smuggled(name)
    data = (f"GET /elsewhere HTTP/1.1\r\nHost: x\r\n{H}: {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body + PING)
    responses, rest = exchange(served.port, data, expect=2)
    assert [status for status, _ in responses] == [404, 200]
    assert rest == b""
    assert CANARY not in repr(responses)


def test_a_chunked_body_holding_a_request_is_never_answered(served: Serve, secret: tuple[str, str]) -> None:
    name, _ = secret
    body = smuggled(name)
    data = (b"POST /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n" + PING)
    responses, rest = exchange(served.port, data, expect=2)
    assert [status for status, _ in responses] == [405, 200]
    assert responses[1][1] == b"healthy"
    assert rest == b""
    assert CANARY not in repr(responses)


def test_a_body_still_arriving_after_the_answer_closes_the_connection(served: Serve) -> None:
    data = b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 10
    responses, rest = exchange(served.port, data, expect=1)
    assert responses[0][0] == 405
    assert rest == b"<EOF>"  # not held open for a body trickled at the client's pace


@pytest.mark.parametrize("framing", [
    "Content-Length: {n}\r\nTransfer-Encoding: chunked",
    "Transfer-Encoding: chunked\r\nContent-Length: {n}",
    "Content-Length: {n}\r\nContent-Length: 0",
    "Content-Length: 0\r\nContent-Length: {n}",
    "Transfer-Encoding: gzip, chunked\r\nContent-Length: {n}",
])
def test_conflicting_framing_is_400_and_the_connection_closed(
    served: Serve, secret: tuple[str, str], framing: str
) -> None:
    name, _ = secret
    body = smuggled(name)
    head = f"POST /ping HTTP/1.1\r\nHost: x\r\n{framing.format(n=len(body))}\r\n\r\n".encode()
    responses, rest = exchange(served.port, head + body + PING, expect=1)
    assert responses[0][0] == 400
    assert rest == b"<EOF>"  # closed: nothing after the refusal is read as a request
    assert CANARY not in repr(responses)


# -- 4. malformed targets, and nothing a client sends is an ERROR ---------------------------------------

@pytest.mark.parametrize("target", [b"//[::1/x", b"//[::1/secretsmanager/get?secretId=a", b"http://[::1/x",
                                    b"/v1/%ff%fe", b"/\xff\xfe", b"/secretsmanager/get?secretId=%00"])
def test_a_malformed_target_is_400(served: Serve, target: bytes) -> None:
    data = b"GET " + target + f" HTTP/1.1\r\nHost: x\r\n{H}: {TOKEN}\r\n\r\n".encode()
    responses, _ = exchange(served.port, data, expect=1)
    assert responses[0][0] == 400


JUNK = [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", b"GET / HTTP/1.1\r\n\x00: x\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 5000 + b"\r\n",
        b"GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"]


def test_nothing_a_client_sends_logs_an_error_or_a_traceback(proxy: FaultProxy) -> None:
    with serving(proxy.url, "--header-timeout", "1", "--log-level", "INFO") as server:
        for target in (b"//[::1/x", b"/\xff", b"http://[::1/"):
            exchange(server.port, b"GET " + target + f" HTTP/1.1\r\nHost: x\r\n{H}: {TOKEN}\r\n\r\n".encode(),
                     expect=1)
        for junk in JUNK:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            try:
                sock.sendall(junk)
                sock.settimeout(3)
                while sock.recv(65536):
                    pass
            except OSError:
                pass
            finally:
                sock.close()
        assert server.request("/ping", token=None) == (200, b"healthy")
        time.sleep(0.5)
        log = server.stderr
    assert "ERROR" not in log
    assert "Traceback" not in log
    assert "Invalid HTTP request" not in log  # demoted to DEBUG: a client cannot fill the log at INFO


# -- 2. the header timeout ------------------------------------------------------------------------------

SLOW = [b"G", b"GET /secretsmanager/get?secre", b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Aws-Param"]


def test_slow_clients_holding_every_slot_are_closed_after_the_header_timeout(proxy: FaultProxy) -> None:
    with serving(proxy.url, "--max-conn", str(len(SLOW)), "--header-timeout", "1", "--idle-timeout", "60") as server:
        held = []
        for partial in SLOW:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
            sock.sendall(partial)
            held.append(sock)
        try:
            # every slot is taken: a good client is refused while they hold them
            assert server.request("/ping", token=None) == (429, b"Connection limit exceeded")
            for sock in held:  # each is closed by the server (15 s bound: far past the 1 s timeout)
                assert sock.recv(1024) == b""
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 5
        while True:  # the slots free as the server notices the closes
            status = server.request("/ping", token=None)[0]
            if status == 200:
                break
            assert status == 429
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_a_byte_at_a_time_does_not_extend_the_header_timeout(proxy: FaultProxy) -> None:
    with serving(proxy.url, "--header-timeout", "1", "--idle-timeout", "60") as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        try:
            request = PING[:-2]  # never the final blank line
            closed_after = None
            for i, byte in enumerate(request * 10):
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    closed_after = i
                    break
                sock.settimeout(0.2)
                try:
                    if sock.recv(1) == b"":
                        closed_after = i
                        break
                except TimeoutError:
                    pass
            # at 0.2 s a byte, 1 s of headers is about 5 bytes: closed long before the 10 x request
            assert closed_after is not None
            assert closed_after < len(request) * 10 - 1
        finally:
            sock.close()
        assert server.request("/ping", token=None) == (200, b"healthy")


def test_the_header_timeout_does_not_cut_a_keep_alive_connection_between_requests(
    served: Serve, secret: tuple[str, str]
) -> None:
    name, value = secret
    conn = served.connection()
    try:
        for _ in range(2):
            conn.request("GET", f"/v1/{name}", headers={H: TOKEN})
            response = conn.getresponse()
            assert json.loads(response.read())["SecretString"] == value
            time.sleep(2.5)  # idle past the 2 s header timeout: idle time is --idle-timeout's
    finally:
        conn.close()


def test_the_header_timeout_is_an_option_with_a_bounded_value(proxy: FaultProxy) -> None:
    for bad in ("0", "-1", "601"):
        server = Serve(["--port", "0", "--endpoint-url", proxy.url, "--header-timeout", bad],
                       serve_env({"AWS_TOKEN": TOKEN}), must_start=False)
        assert server.proc.wait(10) == 2
        assert "--header-timeout" in server.stderr


def test_the_stdlib_front_end_is_refused_with_a_message(proxy: FaultProxy) -> None:
    server = Serve(["--port", "0", "--endpoint-url", proxy.url, "--server", "stdlib"],
                   serve_env({"AWS_TOKEN": TOKEN}), must_start=False)
    assert server.proc.wait(10) == 2
    assert "secretcache[serve]" in server.stderr


# -- 3. the Unix socket ---------------------------------------------------------------------------------

def unix_get(path: str, target: str) -> tuple[int, bytes]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    conn = http.client.HTTPConnection("localhost", timeout=10)
    conn.sock = sock
    try:
        conn.request("GET", target, headers={H: TOKEN})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def start_unix(path: str, proxy: FaultProxy, **kwargs: Any) -> Serve:
    return Serve(["--unix-socket", path, "--endpoint-url", proxy.url], serve_env({"AWS_TOKEN": TOKEN}), **kwargs)


def test_a_socket_left_by_a_killed_serve_is_replaced_on_restart(
    proxy: FaultProxy, admin: Any, tmp_path: Path
) -> None:
    name, value = unique(), canary_value("unix-restart")
    admin.create_secret(Name=name, SecretString=value)
    path = str(tmp_path / "sc.sock")
    first = start_unix(path, proxy)
    assert unix_get(path, "/ping") == (200, b"healthy")
    first.proc.send_signal(signal.SIGKILL)  # the OOM killer, a node drain: no cleanup
    first.proc.wait(10)
    assert Path(path).is_socket()  # left behind
    second = start_unix(path, proxy)
    try:
        status, body = unix_get(path, f"/v1/{name}")
        assert status == 200
        assert json.loads(body)["SecretString"] == value
        assert "stale socket" in second.stderr
    finally:
        assert second.stop() == 0
    assert not Path(path).exists()
    assert CANARY not in first.stderr


def test_a_live_server_on_the_socket_is_refused_and_keeps_serving(proxy: FaultProxy, tmp_path: Path) -> None:
    path = str(tmp_path / "sc.sock")
    live = start_unix(path, proxy)
    try:
        inode = os.stat(path).st_ino
        intruder = start_unix(path, proxy, must_start=False)
        assert intruder.proc.wait(15) == 2
        assert "another server is listening" in intruder.stderr
        assert os.stat(path).st_ino == inode  # its socket file untouched, at exit too
        assert unix_get(path, "/ping") == (200, b"healthy")
    finally:
        assert live.stop() == 0


def test_a_file_that_is_not_a_socket_is_never_deleted(proxy: FaultProxy, tmp_path: Path) -> None:
    path = tmp_path / "precious"
    path.write_text("not a socket")
    server = start_unix(str(path), proxy, must_start=False)
    assert server.proc.wait(15) == 2
    assert "not a socket" in server.stderr
    assert path.read_text() == "not a socket"
    directory = tmp_path / "adir"
    directory.mkdir()
    server = start_unix(str(directory), proxy, must_start=False)
    assert server.proc.wait(15) == 2
    assert directory.is_dir()
