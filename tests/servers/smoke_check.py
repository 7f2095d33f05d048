#!/usr/bin/env python3
"""Smoke check of the loopback test mail servers, driven by their env files.

    python3 tests/servers/smoke_check.py [postfix] [aiosmtpd] [exim] [dovecot] [--ehlo]

Reads $TLS_MAILER_SERVERS_DIR/{postfix,aiosmtpd,exim,dovecot}.env (default
/tmp/tls-mailer-servers) and checks every property the integration tests rely
on. --ehlo prints each port's raw EHLO reply. Exits non-zero on the first
failed check. Connects to loopback only.
"""
import base64
import os
import smtplib
import socket
import ssl
import sys
import time
import uuid
import warnings

warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 is probed on purpose

ROOT = os.environ.get("TLS_MAILER_SERVERS_DIR", "/tmp/tls-mailer-servers")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
checks = 0


def load_env(name):
    path = os.path.join(ROOT, name + ".env")
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                env[k] = v
    return env


def ok(what):
    global checks
    checks += 1
    print("  ok  %s" % what)


def fail(what):
    print("  FAIL %s" % what, file=sys.stderr)
    sys.exit(1)


def expect(cond, what):
    ok(what) if cond else fail(what)


def tls_ctx(ca):
    return ssl.create_default_context(cafile=ca)


def raw_ehlo(host, port, ca, mode):
    """The EHLO reply exactly as sent, for the report. mode: implicit|starttls|plain."""
    assert host in LOOPBACK
    s = socket.create_connection((host, port), timeout=10)
    if mode == "implicit":
        ctx = tls_ctx(ca)
        ctx.check_hostname = False
        s = ctx.wrap_socket(s)
    f = s.makefile("rb")

    def reply():
        lines = []
        while True:
            line = f.readline()
            lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if len(line) < 4 or line[3:4] != b"-":
                return lines

    out = ["S: " + l for l in reply()]
    out.append("C: EHLO client.test")
    s.sendall(b"EHLO client.test\r\n")
    out += ["S: " + l for l in reply()]
    if mode == "starttls":
        out.append("C: STARTTLS")
        s.sendall(b"STARTTLS\r\n")
        out += ["S: " + l for l in reply()]
        s = tls_ctx(ca).wrap_socket(s, server_hostname=host)
        f = s.makefile("rb")
        out.append("   (TLS %s)" % s.version())
        out.append("C: EHLO client.test")
        s.sendall(b"EHLO client.test\r\n")
        out += ["S: " + l for l in reply()]
    s.sendall(b"QUIT\r\n")
    s.close()
    return out


def sasl_auth(s, mech, user, password):
    """AUTH PLAIN or LOGIN with UTF-8 credentials (smtplib only sends ASCII)."""
    b64 = lambda b: base64.b64encode(b).decode()
    u, p = user.encode("utf-8"), password.encode("utf-8")
    if mech == "PLAIN":
        return s.docmd("AUTH PLAIN " + b64(b"\0" + u + b"\0" + p))[0]
    code, _ = s.docmd("AUTH LOGIN")
    if code != 334:
        return code
    code, _ = s.docmd(b64(u))
    if code != 334:
        return code
    return s.docmd(b64(p))[0]


def wait_for_file(directory, needle, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                if name.endswith(".tmp"):  # still being written (aiosmtpd spool)
                    continue
                p = os.path.join(directory, name)
                try:
                    with open(p, "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue
                if needle in data:
                    return p, data
        time.sleep(0.1)
    return None, None


def message(sender, rcpt, tag, body="Hello from the smoke check.\r\n", extra=""):
    return (
        "From: <%s>\r\nTo: <%s>\r\nSubject: smoke %s\r\nMessage-ID: <%s@client.test>\r\n%s\r\n%s"
        % (sender, rcpt, tag, tag, extra, body)
    )


def check_starttls_port(label, host, ps, ca, sender):
    """STARTTLS port: nothing before STARTTLS, AUTH after it."""
    s = smtplib.SMTP(host, ps, timeout=30)
    s.ehlo("client.test")
    expect(s.has_extn("starttls") and not s.has_extn("auth"), "%sstarttls: STARTTLS offered, AUTH hidden before TLS" % label)
    code, msg = s.docmd("MAIL FROM:<%s>" % sender)
    expect(code == 530, "%sstarttls: MAIL before STARTTLS refused (%d %s)" % (label, code, msg.decode()))
    s.starttls(context=tls_ctx(ca))
    s.ehlo("client.test")
    expect(set(s.esmtp_features.get("auth", "").split()) >= {"PLAIN", "LOGIN"}, "%sstarttls: AUTH PLAIN LOGIN after STARTTLS" % label)
    s.close()


def users_of(e, prefix):
    """The SASL users of an env file: plain, UTF-8 and 120-character passwords."""
    return [(e[prefix + k + "USER"], e[prefix + k + "PASSWORD"]) for k in ("_", "_UTF8_", "_LONG_")]


def authed_client(host, port, ca, user, password):
    """A function that opens an implicit-TLS connection logged in as user."""
    def authed():
        c = smtplib.SMTP_SSL(host, port, context=tls_ctx(ca), timeout=60)
        c.ehlo("client.test")
        c.login(user, password)
        return c
    return authed


def check_delivery_to_alice(label, authed, sender, dom, base):
    """A message to alice lands in her Maildir; returns what was stored."""
    tag = uuid.uuid4().hex
    s = authed()
    s.sendmail(sender, ["alice@" + dom], message(sender, "alice@" + dom, tag))
    s.quit()
    path, data = wait_for_file(os.path.join(base, "alice", "new"), tag.encode())
    expect(path is not None, "%sdelivery: message in %s" % (label, path or base + "/alice/new"))
    return data


def check_auth_matrix(label, host, ca, pi, ps, users, bad_user):
    """AUTH PLAIN and LOGIN for every user on both TLS ports; a bad password fails."""
    for port, where in ((pi, "implicit"), (ps, "starttls")):
        for mech in ("PLAIN", "LOGIN"):
            for u, p in users + [(bad_user, "wrong-password")]:
                if port == pi:
                    s = smtplib.SMTP_SSL(host, port, context=tls_ctx(ca), timeout=30)
                else:
                    s = smtplib.SMTP(host, port, timeout=30)
                    s.starttls(context=tls_ctx(ca))
                s.ehlo("client.test")
                code = sasl_auth(s, mech, u, p)
                good = p != "wrong-password"
                expect((code == 235) == good, "%s%s: AUTH %s %s (%d chars) -> %d" % (label, where, mech, u, len(p), code))
                s.close()


def check_bdat_and_smtputf8(label, authed, sender, dom, base, utf8_rcpt):
    """CHUNKING: BDAT with an 8-bit body, to the catch-all; SMTPUTF8: UTF-8 local part."""
    tag = uuid.uuid4().hex
    s = authed()
    body = message(sender, "someone@" + dom, tag, body="Gr\u00fc\u00dfe in 8 bit.\r\n",
                   extra="MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n").encode()
    s.docmd("MAIL FROM:<%s> BODY=8BITMIME" % sender)
    s.docmd("RCPT TO:<someone@%s>" % dom)
    s.send(b"BDAT %d LAST\r\n" % len(body) + body)
    code, msg = s.getreply()
    expect(code == 250, "%schunking: BDAT LAST -> %d %s" % (label, code, msg.decode()))
    s.quit()
    path, data = wait_for_file(os.path.join(base, "catchall", "new"), tag.encode())
    expect(path is not None and "Grüße".encode() in data, "%sdelivery: 8-bit BDAT message in catch-all Maildir" % label)

    tag = uuid.uuid4().hex
    s = authed()
    s.sendmail(sender, [utf8_rcpt], message(sender, utf8_rcpt, tag).encode(), mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    s.quit()
    path, data = wait_for_file(os.path.join(base, "joerg", "new"), tag.encode())
    expect(path is not None, "%ssmtputf8: message for %s in %s" % (label, utf8_rcpt, path))


def check_rcpt_verdicts(label, s, sender, verdicts):
    """RCPT rejections and relay refusal: (address, code, enhanced code) each."""
    s.docmd("MAIL FROM:<%s>" % sender)
    for rcpt, want_code, want_enh in verdicts:
        code, msg = s.docmd("RCPT TO:<%s>" % rcpt)
        expect(code == want_code and msg.startswith(want_enh), "%srcpt %s -> %d %s" % (label, rcpt, code, msg.decode()))
    s.rset()


def check_data_too_big(label, authed, sender, dom, lines, what):
    """DATA without SIZE of `lines` 1000-byte lines gets 552 at the dot."""
    s = authed()
    s.docmd("MAIL FROM:<%s>" % sender)
    s.docmd("RCPT TO:<alice@%s>" % dom)
    code, _ = s.docmd("DATA")
    line = b"x" * 998 + b"\r\n"
    big = b"Subject: too big\r\n\r\n" + line * lines
    s.send(big + b".\r\n")
    code, msg = s.getreply()
    expect(code == 552, "%ssize: %s DATA without SIZE -> %d %s" % (label, what, code, msg.decode()))
    s.close()


def check_postfix(show_ehlo):
    e = load_env("postfix")
    host, ca, dom = "localhost", e["POSTFIX_CA"], e["POSTFIX_DOMAIN"]
    pi, ps, pp, pw = (int(e[k]) for k in ("POSTFIX_IMPLICIT_PORT", "POSTFIX_STARTTLS_PORT",
                                         "POSTFIX_PLAIN_PORT", "POSTFIX_WRONGHOST_PORT"))
    user, pw1 = e["POSTFIX_USER"], e["POSTFIX_PASSWORD"]
    base = e["POSTFIX_MAILDIR_BASE"]
    sender = "%s@%s" % (user, dom)
    print("postfix %s" % e["POSTFIX_VERSION"])

    if show_ehlo:
        for title, port, mode in (("implicit TLS", pi, "implicit"), ("STARTTLS", ps, "starttls"),
                                  ("plain", pp, "plain"), ("wrong-host implicit TLS", pw, "implicit")):
            print("--- postfix %s port %d" % (title, port))
            print("\n".join(raw_ehlo(host, port, ca, mode)))

    # Implicit TLS: verified certificate, TLS >= 1.2, extensions.
    s = smtplib.SMTP_SSL(host, pi, context=tls_ctx(ca), timeout=30)
    s.ehlo("client.test")
    for ext in ("pipelining", "chunking", "8bitmime", "smtputf8", "dsn", "enhancedstatuscodes"):
        expect(s.has_extn(ext), "implicit: %s advertised" % ext.upper())
    expect(s.esmtp_features.get("size") == e["POSTFIX_SIZE_LIMIT"], "implicit: SIZE %s" % e["POSTFIX_SIZE_LIMIT"])
    expect(set(s.esmtp_features.get("auth", "").split()) >= {"PLAIN", "LOGIN"}, "implicit: AUTH PLAIN LOGIN")
    code, _ = s.docmd("MAIL FROM:<%s>" % sender)
    code, msg = s.docmd("RCPT TO:<alice@%s>" % dom)
    expect(code == 554 and b"5.7.1" in msg, "implicit: unauthenticated RCPT refused (%d %s)" % (code, msg.decode()))
    s.close()

    for ip in ("127.0.0.1", "::1"):
        for ver, want in ((ssl.TLSVersion.TLSv1_2, True), (ssl.TLSVersion.TLSv1_1, False)):
            ctx = tls_ctx(ca)
            ctx.check_hostname = False
            if ver == ssl.TLSVersion.TLSv1_1:
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                ctx.minimum_version = ver
            ctx.maximum_version = ver
            try:
                with socket.create_connection((ip, pi), timeout=10) as raw:
                    with ctx.wrap_socket(raw) as t:
                        got = t.version()
            except (ssl.SSLError, OSError) as exc:
                got = None
            expect((got is not None) == want, "implicit [%s]: %s %s" % (ip, ver.name, "accepted" if want else "refused"))

    # Wrong-host port: chains to the CA, names another host.
    try:
        smtplib.SMTP_SSL(host, pw, context=tls_ctx(ca), timeout=30).close()
        fail("wronghost: hostname check should fail")
    except ssl.SSLCertVerificationError as exc:
        expect("Hostname mismatch" in str(exc) or "hostname" in str(exc).lower(), "wronghost: hostname mismatch (%s)" % exc.verify_message)
    ctx = tls_ctx(ca)
    ctx.check_hostname = False
    s = smtplib.SMTP_SSL(host, pw, context=ctx, timeout=30)
    cert = s.sock.getpeercert()
    expect(("DNS", e["POSTFIX_WRONGHOST_NAME"]) in cert.get("subjectAltName", ()), "wronghost: chain verifies, SAN %s" % e["POSTFIX_WRONGHOST_NAME"])
    s.close()

    # STARTTLS port: nothing before STARTTLS.
    check_starttls_port("", host, ps, ca, sender)

    # AUTH PLAIN and LOGIN for every user on both TLS ports; a bad password fails.
    users = users_of(e, "POSTFIX")
    check_auth_matrix("", host, ca, pi, ps, users, user)

    authed = authed_client(host, pi, ca, user, pw1)

    # Delivery to a Maildir, with TLS and AUTH recorded in Received.
    data = check_delivery_to_alice("", authed, sender, dom, base)
    expect(b"(Authenticated sender: alice" in data and b"TLSv1.3" in data, "delivery: Received shows TLS and AUTH")

    check_bdat_and_smtputf8("", authed, sender, dom, base, e["POSTFIX_UTF8_ADDRESS"])

    # RCPT rejections, relay refusal.
    s = authed()
    check_rcpt_verdicts("", s, sender, ((e["POSTFIX_REJECT_PERM"], 550, b"5.1.1"), (e["POSTFIX_REJECT_TEMP"], 450, b"4.2.0"),
                                        ("someone@elsewhere.invalid", 554, b"5.7.1")))

    # SIZE: declared too big, then sent too big.
    code, msg = s.docmd("MAIL FROM:<%s> SIZE=%d" % (sender, 31 * 1024 * 1024))
    expect(code == 552, "size: MAIL SIZE=31MiB -> %d %s" % (code, msg.decode()))
    s.quit()
    check_data_too_big("", authed, sender, dom, 31 * 1024 * 1024 // 1000 + 1, "31 MiB")

    # Bare LF in DATA content.
    s = authed()
    s.docmd("MAIL FROM:<%s>" % sender)
    s.docmd("RCPT TO:<alice@%s>" % dom)
    s.docmd("DATA")
    s.send(b"Subject: bare lf\r\n\r\nline one\nline two\r\n.\r\n")
    code, msg = s.getreply()
    expect(code == 550 and b"bare <LF>" in msg, "bare LF in DATA -> %d %s" % (code, msg.decode()))
    s.close()

    # Plain port: AUTH offered without TLS (and works: a correct client must not use it).
    s = smtplib.SMTP(host, pp, timeout=30)
    s.ehlo("client.test")
    expect(not s.has_extn("starttls") and set(s.esmtp_features.get("auth", "").split()) >= {"PLAIN", "LOGIN"},
           "plain: no STARTTLS, AUTH PLAIN LOGIN offered")
    s.close()


def check_aiosmtpd(show_ehlo):
    e = load_env("aiosmtpd")
    host, ca = "localhost", e["AIOSMTPD_CA"]
    pi, ps = int(e["AIOSMTPD_IMPLICIT_PORT"]), int(e["AIOSMTPD_STARTTLS_PORT"])
    user, pw = e["AIOSMTPD_USER"], e["AIOSMTPD_PASSWORD"]
    spool = e["AIOSMTPD_SPOOL"]
    print("aiosmtpd %s" % e["AIOSMTPD_VERSION"])
    if show_ehlo:
        for title, port, mode in (("implicit TLS", pi, "implicit"), ("STARTTLS", ps, "starttls")):
            print("--- aiosmtpd %s port %d" % (title, port))
            print("\n".join(raw_ehlo(host, port, ca, mode)))

    s = smtplib.SMTP(host, ps, timeout=30)
    s.ehlo("client.test")
    expect(s.has_extn("starttls"), "aiosmtpd starttls: STARTTLS offered")
    code, msg = s.docmd("MAIL FROM:<a@b.test>")
    expect(code == 530, "aiosmtpd starttls: MAIL before STARTTLS refused (%d %s)" % (code, msg.decode()))
    code, msg = s.docmd("AUTH PLAIN " + base64.b64encode(b"\0%s\0%s" % (user.encode(), pw.encode())).decode())
    expect(code != 235, "aiosmtpd starttls: AUTH before STARTTLS refused (%d %s)" % (code, msg.decode()))
    s.close()

    for port, label in ((pi, "implicit"), (ps, "starttls")):
        for mech in ("PLAIN", "LOGIN"):
            for p in (pw, "wrong-password"):
                if port == pi:
                    s = smtplib.SMTP_SSL(host, port, context=tls_ctx(ca), timeout=30)
                else:
                    s = smtplib.SMTP(host, port, timeout=30)
                    s.starttls(context=tls_ctx(ca))
                s.ehlo("client.test")
                code = sasl_auth(s, mech, user, p)
                expect((code == 235) == (p == pw), "aiosmtpd %s: AUTH %s %s -> %d" % (label, mech, "good" if p == pw else "bad", code))
                s.close()

    for port, label in ((pi, "implicit"), (ps, "starttls")):
        tag = uuid.uuid4().hex
        if port == pi:
            s = smtplib.SMTP_SSL(host, port, context=tls_ctx(ca), timeout=60)
        else:
            s = smtplib.SMTP(host, port, timeout=60)
            s.starttls(context=tls_ctx(ca))
        s.ehlo("client.test")
        code, msg = s.docmd("MAIL FROM:<a@b.test>")
        expect(code == 530, "aiosmtpd %s: MAIL before AUTH refused (%d %s)" % (label, code, msg.decode()))
        s.login(user, pw)
        line = b"y" * 998 + b"\r\n"
        body = message("a@b.test", "c@d.test", tag).encode() + line * (20 * 1024 * 1024 // len(line))
        s.sendmail("a@b.test", ["c@d.test", "jörg@d.test"], body, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        s.quit()
        path, data = wait_for_file(spool, tag.encode(), timeout=30)
        expect(path is not None and len(data) >= len(body), "aiosmtpd %s: 20 MiB message stored as %s" % (label, path))
        meta = path[: -len(".eml")] + ".json"
        import json
        with open(meta, encoding="utf-8") as fh:
            m = json.load(fh)
        expect(m["rcpt_tos"] == ["c@d.test", "jörg@d.test"] and m["auth_login"] == user and m["tls"],
               "aiosmtpd %s: envelope %s" % (label, {k: m[k] for k in ("mail_from", "rcpt_tos", "mail_options", "tls_version")}))


def check_exim(show_ehlo):
    e = load_env("exim")
    host, ca, dom = "localhost", e["EXIM_CA"], e["EXIM_DOMAIN"]
    pi, ps, pw = (int(e[k]) for k in ("EXIM_IMPLICIT_PORT", "EXIM_STARTTLS_PORT", "EXIM_WRONGHOST_PORT"))
    user, pw1 = e["EXIM_USER"], e["EXIM_PASSWORD"]
    base = e["EXIM_MAILDIR_BASE"]
    sender = "%s@%s" % (user, dom)
    print("exim %s" % e["EXIM_VERSION"])
    if show_ehlo:
        for title, port, mode in (("implicit TLS", pi, "implicit"), ("STARTTLS", ps, "starttls"),
                                  ("wrong-host implicit TLS", pw, "implicit")):
            print("--- exim %s port %d" % (title, port))
            print("\n".join(raw_ehlo(host, port, ca, mode)))

    s = smtplib.SMTP_SSL(host, pi, context=tls_ctx(ca), timeout=30)
    s.ehlo("client.test")
    for ext in ("pipelining", "chunking", "8bitmime", "smtputf8", "dsn"):
        expect(s.has_extn(ext), "exim implicit: %s advertised" % ext.upper())
    expect(s.esmtp_features.get("size") == e["EXIM_SIZE_LIMIT"], "exim implicit: SIZE %s" % e["EXIM_SIZE_LIMIT"])
    expect(set(s.esmtp_features.get("auth", "").split()) >= {"PLAIN", "LOGIN"}, "exim implicit: AUTH PLAIN LOGIN")
    expect(s.sock.version() in ("TLSv1.2", "TLSv1.3"), "exim implicit: %s" % s.sock.version())
    code, msg = s.docmd("MAIL FROM:<%s>" % sender)
    expect(code == 530, "exim implicit: MAIL before AUTH refused (%d %s)" % (code, msg.decode()))
    s.close()

    ctx = tls_ctx(ca)
    ctx.check_hostname = False
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    try:
        with socket.create_connection(("127.0.0.1", pi), timeout=10) as raw:
            with ctx.wrap_socket(raw) as t:
                got = t.version()
    except (ssl.SSLError, OSError):
        got = None
    expect(got is None, "exim implicit: TLS 1.1 refused")

    try:
        smtplib.SMTP_SSL(host, pw, context=tls_ctx(ca), timeout=30).close()
        fail("exim wronghost: hostname check should fail")
    except ssl.SSLCertVerificationError as exc:
        expect("hostname" in str(exc).lower(), "exim wronghost: hostname mismatch (%s)" % exc.verify_message)

    check_starttls_port("exim ", host, ps, ca, sender)

    users = users_of(e, "EXIM")
    check_auth_matrix("exim ", host, ca, pi, ps, users, user)

    authed = authed_client(host, pi, ca, user, pw1)

    data = check_delivery_to_alice("exim ", authed, sender, dom, base)
    expect(b"with esmtpsa" in data, "exim delivery: Received shows esmtpsa")
    check_bdat_and_smtputf8("exim ", authed, sender, dom, base, e["EXIM_UTF8_ADDRESS"])

    # Exim's RCPT replies carry no enhanced status code unless the ACL's
    # message does (it has no ENHANCEDSTATUSCODES); these ACLs put one in.
    s = authed()
    check_rcpt_verdicts("exim ", s, sender, ((e["EXIM_REJECT_PERM"], 550, b"5.1.1"), (e["EXIM_REJECT_TEMP"], 450, b"4.2.0"),
                                             ("someone@elsewhere.invalid", 550, b"5.7.1")))
    limit = int(e["EXIM_SIZE_LIMIT"])
    code, msg = s.docmd("MAIL FROM:<%s> SIZE=%d" % (sender, limit + 1))
    expect(code == 552, "exim size: MAIL SIZE=limit+1 -> %d %s" % (code, msg.decode()))
    s.quit()
    # Exim counts the message as stored, lines ending in LF: over the limit
    # on the wire (CRLF) is not enough.
    check_data_too_big("exim ", authed, sender, dom, limit // 999 + 2, "over-limit (as stored)")

def check_dovecot(show_ehlo):
    e = load_env("dovecot")
    dom, base, full = e["DOVECOT_DOMAIN"], e["DOVECOT_MAILDIR_BASE"], e["DOVECOT_QUOTA_USER"]
    print("dovecot %s" % e["DOVECOT_VERSION"])
    sender = "smoke@example.org"
    for title, target in (("socket", e["DOVECOT_SOCKET"]), ("tcp", e["DOVECOT_HOST"])):
        if target != e["DOVECOT_SOCKET"]:
            expect(target in LOOPBACK, "dovecot tcp: %s is loopback" % target)
            s = smtplib.LMTP(target, int(e["DOVECOT_LMTP_PORT"]), timeout=20)
        else:
            s = smtplib.LMTP(target, timeout=20)
        code, msg = s.docmd("LHLO", "smoke.example.org")
        if show_ehlo:
            print("--- dovecot %s LHLO\n%d %s" % (title, code, msg.decode()))
        expect(code == 250, "dovecot %s: LHLO 250" % title)
        for ext in (b"PIPELINING", b"CHUNKING", b"8BITMIME", b"ENHANCEDSTATUSCODES"):
            expect(ext in msg, "dovecot %s: %s advertised" % (title, ext.decode()))
        expect(b"STARTTLS" not in msg, "dovecot %s: no STARTTLS" % title)
        s.quit()
    # The verdicts the suite relies on: an unknown user refused at RCPT, the
    # quota user refused after the data, the others delivered.
    s = smtplib.LMTP(e["DOVECOT_SOCKET"], timeout=20)
    s.docmd("LHLO", "smoke.example.org")
    expect(s.docmd("MAIL FROM:<%s>" % sender)[0] == 250, "dovecot: MAIL 250")
    code, msg = s.docmd("RCPT TO:<nobody@%s>" % dom)
    expect(code == 550 and b"5.1.1" in msg, "dovecot: unknown user refused at RCPT (%d %s)" % (code, msg.decode()))
    for user in ("alice", full):
        code, msg = s.docmd("RCPT TO:<%s@%s>" % (user, dom))
        expect(code == 250, "dovecot: RCPT %s 250 (%d %s)" % (user, code, msg.decode()))
    expect(s.docmd("DATA")[0] == 354, "dovecot: DATA 354")
    tag = uuid.uuid4().hex
    body = "X-Smoke: %s\r\nSubject: smoke\r\n\r\n" % tag + "filler line over the quota\r\n" * 64
    s.send((body + ".\r\n").encode())
    code, msg = s.getreply()
    expect(code == 250 and ("<alice@%s>" % dom).encode() in msg, "dovecot: alice saved after the data (%d %s)" % (code, msg.decode()))
    code, msg = s.getreply()
    expect(code == 552 and b"5.2.2" in msg, "dovecot: %s over quota after the data (%d %s)" % (full, code, msg.decode()))
    s.quit()
    path, _ = wait_for_file(os.path.join(base, "alice", "Maildir", "new"), tag.encode())
    expect(path is not None, "dovecot: alice's Maildir has the message")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    show = "--ehlo" in sys.argv
    todo = args or ["postfix", "aiosmtpd", "exim", "dovecot"]
    checkers = {"postfix": check_postfix, "aiosmtpd": check_aiosmtpd, "exim": check_exim, "dovecot": check_dovecot}
    for name in todo:
        checkers[name](show)
    print("smoke check: all %d checks ok (%s)" % (checks, ", ".join(todo)))


if __name__ == "__main__":
    main()
