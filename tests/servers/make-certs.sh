#!/usr/bin/env bash
# make-certs.sh DIR
#
# Creates (once) the test PKI shared by the loopback mail servers:
#   DIR/ca.pem, DIR/ca-key.pem                 test CA (CN "tls-mailer test CA")
#   DIR/localhost.pem, DIR/localhost-key.pem   leaf: DNS:localhost, IP:127.0.0.1, IP:::1
#   DIR/wronghost.pem, DIR/wronghost-key.pem   leaf: DNS:wrong.example.invalid only
#   DIR/localhost-chain.pem, DIR/wronghost-chain.pem
#                                              key followed by leaf certificate, the
#                                              form Postfix's smtpd_tls_chain_files takes
# Idempotent: existing files are kept while they are complete and valid for at
# least another day, so servers started earlier keep matching DIR/ca.pem.
# Set TLS_MAILER_FORCE_CERTS=1 to remake everything.
set -euo pipefail

dir=${1:?usage: make-certs.sh DIR}
command -v openssl >/dev/null || { echo "make-certs.sh: openssl not found" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"

all_present() {
    local f
    for f in ca.pem ca-key.pem localhost.pem localhost-key.pem wronghost.pem \
             wronghost-key.pem localhost-chain.pem wronghost-chain.pem; do
        [ -s "$f" ] || return 1
    done
    for f in ca.pem localhost.pem wronghost.pem; do
        openssl x509 -in "$f" -noout -checkend 86400 >/dev/null || return 1
    done
    openssl verify -CAfile ca.pem localhost.pem wronghost.pem >/dev/null 2>&1 || return 1
}

if [ "${TLS_MAILER_FORCE_CERTS:-0}" != 1 ] && all_present; then
    echo "make-certs.sh: reusing certificates in $dir"
    exit 0
fi

umask 077
tmp=$(mktemp -d "$dir/.new.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

newkey "$tmp/ca-key.pem"
openssl req -new -x509 -key "$tmp/ca-key.pem" -out "$tmp/ca.pem" -days 3650 -sha256 \
    -subj "/O=tls-mailer tests/CN=tls-mailer test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>/dev/null

leaf() { # name cn san
    local name=$1 cn=$2 san=$3
    newkey "$tmp/$name-key.pem"
    openssl req -new -key "$tmp/$name-key.pem" -out "$tmp/$name.csr" \
        -subj "/O=tls-mailer tests/CN=$cn" 2>/dev/null
    cat > "$tmp/$name.ext" <<EXT
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
    openssl x509 -req -in "$tmp/$name.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" \
        -CAcreateserial -out "$tmp/$name.pem" -days 825 -sha256 \
        -extfile "$tmp/$name.ext" 2>/dev/null
    cat "$tmp/$name-key.pem" "$tmp/$name.pem" > "$tmp/$name-chain.pem"
}

leaf localhost localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
leaf wronghost wrong.example.invalid "DNS:wrong.example.invalid"

openssl verify -CAfile "$tmp/ca.pem" "$tmp/localhost.pem" "$tmp/wronghost.pem" >/dev/null

# Certificates are public; keys stay readable by root only except where a
# server needs them (the server scripts set group ownership themselves).
chmod 644 "$tmp"/ca.pem "$tmp"/localhost.pem "$tmp"/wronghost.pem
chmod 600 "$tmp"/*-key.pem "$tmp"/*-chain.pem
for f in ca.pem ca-key.pem localhost.pem localhost-key.pem wronghost.pem \
         wronghost-key.pem localhost-chain.pem wronghost-chain.pem; do
    mv -f "$tmp/$f" "$dir/$f"
done
echo "make-certs.sh: new test CA and leaf certificates in $dir"
