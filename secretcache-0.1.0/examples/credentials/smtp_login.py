"""Log in to an SMTP server with a password from Secrets Manager that rotation may change at any time.

``open_smtp`` is all an application needs: ``login`` hands it the cached secret and, when the server
answers 535 (``smtplib.SMTPAuthenticationError``), refreshes the secret once, tries AWSPENDING during a
single-user rotation, and only then gives up with smtplib's own error. Any other failure (server down,
TLS trouble) is raised at once, with nothing refreshed.

Run it: ``python examples/credentials/smtp_login.py``. The demo starts a tiny SMTP server on 127.0.0.1
and keeps the secret in an in-memory store, rotates the password as Secrets Manager's single-user
rotation does, and logs in before and after. In production, drop the demo part and pass your own cache
(or none: the module-level default cache reads Secrets Manager).
"""

from __future__ import annotations

import base64
import json
import smtplib
import socketserver
import sys
import threading

from secretcache import SecretCache
from secretcache.config import CacheConfig
from secretcache.credentials import auth_stats, login
from secretcache.model import SecretValue
from secretcache.testing import InMemoryBackend

SECRET = "prod/smtp"  # JSON: {"host": ..., "port": ..., "username": ..., "password": ...}


def open_smtp(secret: SecretValue) -> smtplib.SMTP:
    """An authenticated SMTP session; smtplib's SMTPAuthenticationError when the password is refused."""
    conf = json.loads(secret.secret_string or "{}")
    smtp = smtplib.SMTP(conf["host"], conf["port"], timeout=10)
    try:
        # smtp.starttls() here for a real server (port 587); the demo server speaks plain text.
        smtp.login(conf["username"], conf["password"])
    except BaseException:
        smtp.close()
        raise
    return smtp


def send_report(cache: SecretCache | None = None) -> None:
    smtp = login(SECRET, open_smtp, is_auth_failure=lambda e: isinstance(e, smtplib.SMTPAuthenticationError),
                 cache=cache)
    with smtp:
        smtp.noop()  # smtp.send_message(...) in a real application


# -- the demo: a tiny SMTP server (EHLO, AUTH PLAIN, NOOP, QUIT) and a rotation ------------------------


class DemoSmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, username: str, password: str) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.username, self.password = username, password
        self.refused = 0


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: DemoSmtpServer

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 demo ESMTP")
        for raw in self.rfile:
            verb, _, arg = raw.decode().strip().partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.reply("250-demo")
                self.reply("250 AUTH PLAIN")
            elif verb == "AUTH" and arg.upper().startswith("PLAIN "):
                _, user, password = base64.b64decode(arg[6:]).decode().split("\0")
                if (user, password) == (self.server.username, self.server.password):
                    self.reply("235 2.7.0 Authentication successful")
                else:
                    self.server.refused += 1
                    self.reply("535 5.7.8 Authentication credentials invalid")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 OK")


def main() -> None:
    server = DemoSmtpServer("mailer", "first-password")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]

    def doc(password: str) -> str:
        return json.dumps({"host": host, "port": port, "username": "mailer", "password": password})

    backend = InMemoryBackend({SECRET: doc("first-password")})
    with SecretCache(backend, config=CacheConfig(ttl=3600)) as cache:  # a ttl far longer than the demo
        send_report(cache)
        print("sent with the cached password")

        # Single-user rotation: createSecret (AWSPENDING), setSecret (the server changes), finishSecret.
        pending = backend.put_secret(SECRET, doc("second-password"), stages=("AWSPENDING",))
        server.password = "second-password"
        send_report(cache)
        print("sent during the rotation, with AWSPENDING")
        current = next(v for v, stages in backend.version_stages(SECRET).items() if "AWSCURRENT" in stages)
        backend.update_version_stage(SECRET, "AWSCURRENT", move_to_version_id=pending, remove_from_version_id=current)
        send_report(cache)
        print("sent after the rotation")

        stats = auth_stats(SECRET, cache=cache)
        print(f"refused logins: {stats.auth_failures}, forced refreshes: {stats.refreshes}, "
              f"AWSPENDING reads: {stats.pending_fetches}, gave up: {stats.gave_up}")

        server.password = "nobody-knows-this"
        try:
            send_report(cache)
        except smtplib.SMTPAuthenticationError as e:
            print(f"wrong password everywhere: SMTPAuthenticationError {e.smtp_code}")
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    sys.exit(main())
