"""Verify many DKIM-signed messages with dkimpy in one process.

Usage: python3 dkim_verify_batch.py < MANIFEST
Each MANIFEST line is tab-separated: MESSAGE_FILE SELECTOR DOMAIN KEY_TYPE PUBLIC_KEY_B64
(KEY_TYPE is rsa or ed25519; PUBLIC_KEY_B64 is the DKIM p= value).
No DNS: each message's TXT record is served by a dnsfunc.
Prints "INVALID <file>" for each message that fails, then "<n> checked".
Exit 0 when all are valid, 1 when one is not, 2 on a bad manifest line,
3 when dkimpy is missing.
"""
import sys

try:
    import dkim
except ImportError:
    print("dkimpy is not installed: pip install dkimpy pynacl", file=sys.stderr)
    sys.exit(3)

checked = 0
invalid = 0
for line in sys.stdin:
    line = line.rstrip("\r\n")
    if not line:
        continue
    fields = line.split("\t")
    if len(fields) != 5:
        print(f"bad manifest line: {line!r}", file=sys.stderr)
        sys.exit(2)
    path, selector, domain, key_type, p = fields
    record = f"v=DKIM1; k={key_type}; p={p}".encode()
    expected = f"{selector}._domainkey.{domain}"

    def dnsfunc(name, timeout=5, record=record, expected=expected):
        if isinstance(name, bytes):
            name = name.decode()
        return record if name.rstrip(".") == expected else None

    with open(path, "rb") as f:
        message = f.read()
    checked += 1
    if not dkim.verify(message, dnsfunc=dnsfunc):
        invalid += 1
        print(f"INVALID {path}")

print(f"{checked} checked")
sys.exit(1 if invalid else 0)
