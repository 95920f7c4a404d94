"""A real SMTP server for sonde's e-mail tests: aiosmtpd (Debian's
python3-aiosmtpd) on a loopback port, requiring STARTTLS before anything
else and AUTH (PLAIN or LOGIN, one known user) before MAIL.

Usage: smtp_server.py PORT CERT KEY USER PASSWORD RECORD

Every AUTH attempt and every message is appended to RECORD as one JSON
line, with whether the session was over TLS and who authenticated, so the
test sees what reached the server and how. "ready" on stdout once it
listens; it runs until killed.
"""

import json
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, user, password, record = sys.argv[1:7]
lock = threading.Lock()


def append(entry):
    with lock, open(record, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode(),
        auth_data.password.decode(),
    ) == (user, password)
    append({"auth": mechanism, "login": auth_data.login.decode(), "ok": ok,
            "tls": session.ssl is not None})
    # handled=False: aiosmtpd then answers 535 itself on a failure.
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


class Recorder:
    async def handle_DATA(self, server, session, envelope):
        append({
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
            "login": session.auth_data.login.decode() if session.auth_data else None,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "content": envelope.content.decode("utf-8", "replace"),
        })
        return "250 Message accepted for delivery"


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(
    Recorder(),
    hostname="127.0.0.1",
    port=int(port),
    tls_context=context,
    require_starttls=True,
    auth_required=True,
    auth_require_tls=True,
    authenticator=authenticator,
)
controller.start()
print("ready", flush=True)
threading.Event().wait()
