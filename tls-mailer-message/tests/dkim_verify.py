"""Verify a DKIM-signed message with dkimpy, the public key given directly.

Usage: python3 dkim_verify.py MESSAGE_FILE SELECTOR DOMAIN KEY_TYPE PUBLIC_KEY_B64
KEY_TYPE is rsa or ed25519; PUBLIC_KEY_B64 is the DKIM p= value.
No DNS: the TXT record is served by a dnsfunc. Exit 0 when valid.
"""
import sys

try:
    import dkim
except ImportError:
    print("dkimpy is not installed: pip install dkimpy pynacl", file=sys.stderr)
    sys.exit(3)

path, selector, domain, key_type, p = sys.argv[1:6]
record = f"v=DKIM1; k={key_type}; p={p}".encode()
expected_name = f"{selector}._domainkey.{domain}."


def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    if name.rstrip(".") == expected_name.rstrip("."):
        return record
    return None


with open(path, "rb") as f:
    message = f.read()
ok = dkim.verify(message, dnsfunc=dnsfunc)
print("valid" if ok else "INVALID")
sys.exit(0 if ok else 1)
