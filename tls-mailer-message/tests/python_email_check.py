"""Independent reader: parse messages with Python's standard `email` package.

Usage: python3 python_email_check.py FILE...
Prints one JSON object per file (a JSON list) with what a mail reader sees.
"""
import base64
import json
import sys
from email import policy
from email.parser import BytesParser


def fix(value):
    """Raw UTF-8 header bytes (RFC 6532) arrive surrogate-escaped."""
    if value is None:
        return None
    return value.encode("utf-8", "surrogateescape").decode("utf-8")


def addresses(msg, name):
    header = msg[name]
    if header is None:
        return []
    return [{"name": fix(a.display_name) or None, "addr": fix(a.addr_spec)} for a in header.addresses]


def describe(path):
    with open(path, "rb") as f:
        raw = f.read()
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    parts = []
    for part in msg.walk():
        if part.is_multipart() or part in (text, html):
            continue
        cid = part["Content-ID"]
        payload = part.get_payload(decode=True) or b""
        parts.append({
            "content_type": part.get_content_type(),
            "filename": fix(part.get_filename()),
            "cid": str(cid).strip().strip("<>") if cid is not None else None,
            "disposition": part.get_content_disposition(),
            "data_b64": base64.b64encode(payload).decode(),
        })
    structure = [p.get_content_type() for p in msg.walk() if p.is_multipart()]
    return {
        "subject": fix(str(msg["Subject"])) if msg["Subject"] is not None else None,
        "from": addresses(msg, "From"),
        "sender": addresses(msg, "Sender"),
        "to": addresses(msg, "To"),
        "cc": addresses(msg, "Cc"),
        "reply_to": addresses(msg, "Reply-To"),
        "has_bcc": msg["Bcc"] is not None,
        "has_date": msg["Date"] is not None,
        "message_id": str(msg["Message-ID"]).strip().strip("<>") if msg["Message-ID"] else None,
        "mime_version": str(msg["MIME-Version"]) if msg["MIME-Version"] else None,
        "text": text.get_content() if text is not None else None,
        "html": html.get_content() if html is not None else None,
        "parts": parts,
        "multiparts": structure,
        "defects": [type(d).__name__ for p in msg.walk() for d in p.defects],
    }


print(json.dumps([describe(p) for p in sys.argv[1:]]))
