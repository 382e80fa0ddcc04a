"""A real SMTP server on loopback for the email notification tests (tests/it/notify.rs).

aiosmtpd with STARTTLS required (the test CA's certificate), AUTH required after STARTTLS,
and each message written as JSON into OUT_DIR: envelope, whether the session was TLS and
authenticated, the message text as received, its headers and its decoded plain-text body.

Usage: smtp_server.py PORT CERT KEY USER PASSWORD OUT_DIR   (prints "ready" once listening;
stops when standard input closes).
"""

import email
import warnings
import email.policy
import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    # aiosmtpd's own use of its deprecated login_data.
    warnings.filterwarnings("ignore", message="Session.login_data is deprecated")
    port, cert, key, user, password, out = sys.argv[1:7]
    received = {"n": 0}

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received["n"] += 1
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            body = message.get_body(("plain",))
            record = {
                "headers": {k: str(v) for k, v in message.items()},
                "body": body.get_content() if body is not None else "",
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "tls": session.ssl is not None,
                "authenticated": bool(session.authenticated),
                "data": envelope.content.decode("utf-8", "replace"),
            }
            path = os.path.join(out, "%04d.json" % received["n"])
            with open(path + ".tmp", "w") as f:
                json.dump(record, f)
            os.rename(path + ".tmp", path)
            return "250 Message accepted"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=int(port),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
