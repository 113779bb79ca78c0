"""An SMTP server that speaks only TLS and takes mail only after AUTH, for the delivery
tests: `starttls` (STARTTLS required before anything) or `implicit` (TLS from the first
byte, as on port 465). Writes what it receives to a maildir.

Usage: tls_server.py MODE PORT MAILDIR CERT KEY USER PASSWORD
"""

import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

mode, port, maildir, cert, key, user, password = sys.argv[1:]


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == user.encode()
        and auth_data.password == password.encode()
    )
    return AuthResult(success=ok, handled=False)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
common = dict(
    hostname="127.0.0.1",
    port=int(port),
    authenticator=authenticator,
    auth_required=True,
)
if mode == "starttls":
    controller = Controller(
        Mailbox(maildir),
        tls_context=context,
        require_starttls=True,
        auth_require_tls=True,
        **common,
    )
elif mode == "implicit":
    controller = Controller(
        Mailbox(maildir), ssl_context=context, auth_require_tls=False, **common
    )
else:
    sys.exit(f"unknown mode {mode!r}")
controller.start()
print("ready", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
controller.stop()
