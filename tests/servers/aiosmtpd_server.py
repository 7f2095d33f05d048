#!/usr/bin/env python3
"""A second, independent SMTP server for the tls-mailer integration tests.

aiosmtpd on loopback: one implicit-TLS port and one port that requires
STARTTLS before AUTH, AUTH PLAIN/LOGIN with one user, SMTPUTF8, a size limit
large enough for a 20 MiB message. Each accepted message is stored in the
spool directory as <id>.eml (the bytes as received) and <id>.json (envelope).

    aiosmtpd_server.py --implicit-port P --starttls-port P --cert PEM --key PEM
                       --spool DIR --user U --password PW
"""
import argparse
import asyncio
import json
import os
import signal
import ssl
import sys
import threading
import time
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SIZE_LIMIT = 40 * 1024 * 1024


class SpoolHandler:
    def __init__(self, spool):
        self.spool = spool

    async def handle_DATA(self, server, session, envelope):
        name = "%d-%s" % (time.time_ns(), uuid.uuid4().hex[:8])
        content = envelope.original_content or envelope.content
        tmp = os.path.join(self.spool, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(content)
        meta = {
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "auth": session.authenticated,
            "auth_login": login_of(session),
            "tls": tls_version(server) is not None,
            "tls_version": tls_version(server),
        }
        with open(os.path.join(self.spool, name + ".json"), "w") as f:
            json.dump(meta, f)
        os.rename(tmp, os.path.join(self.spool, name + ".eml"))
        return "250 2.0.0 Ok: queued as " + name


def tls_version(server):
    # The transport knows, for implicit TLS and after STARTTLS alike
    # (aiosmtpd's session.ssl is set only for STARTTLS).
    transport = getattr(server, "transport", None)
    ssl_object = transport.get_extra_info("ssl_object") if transport else None
    return ssl_object.version() if ssl_object else None


def login_of(session):
    data = getattr(session, "auth_data", None)
    login = getattr(data, "login", None)
    return login.decode("utf-8", "replace") if isinstance(login, bytes) else None


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return check


def context(cert, key):
    # PROTOCOL_TLS_SERVER with TLS 1.2 minimum, like the client requires.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


class ImplicitTlsController(Controller):
    """Controller whose readiness probe speaks TLS to the implicit-TLS port."""

    def _trigger_server(self):
        import socket

        client = ssl.create_default_context()
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        with socket.create_connection((self.hostname, self.port), timeout=self.ready_timeout) as raw:
            with client.wrap_socket(raw) as tls:
                tls.recv(1024)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--implicit-port", type=int, required=True)
    parser.add_argument("--starttls-port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    os.makedirs(args.spool, exist_ok=True)
    handler = SpoolHandler(args.spool)
    common = dict(
        hostname=args.host,
        authenticator=authenticator(args.user, args.password),
        auth_required=True,
        server_hostname="aiosmtpd.localhost",
        data_size_limit=SIZE_LIMIT,
        enable_SMTPUTF8=True,
        decode_data=False,
    )
    implicit = ImplicitTlsController(
        handler,
        port=args.implicit_port,
        ssl_context=context(args.cert, args.key),
        # The transport is TLS from the first byte; aiosmtpd only knows about
        # STARTTLS when it checks auth_require_tls.
        auth_require_tls=False,
        **common,
    )
    starttls = Controller(
        handler,
        port=args.starttls_port,
        tls_context=context(args.cert, args.key),
        require_starttls=True,
        auth_require_tls=True,
        **common,
    )
    implicit.start()
    starttls.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("aiosmtpd ready", flush=True)
    while not stop.wait(1):
        pass
    implicit.stop()
    starttls.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
