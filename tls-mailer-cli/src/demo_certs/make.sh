#!/usr/bin/env bash
# Makes the certificates of `tls-mailer demo`: a demo CA and a server
# certificate for localhost, 127.0.0.1 and ::1, valid from 2000 to 2126 (so a
# machine's clock is never outside them). They were made once and are
# committed; the binary embeds them (src/demo_server.rs).
#
# The server's private key is public: it is in this directory and in every
# tls-mailer binary. Anyone can present that certificate, so nothing but the
# demo may trust this CA; the demo's client trusts it and nothing else, and
# the demo never leaves loopback. The CA's own key is thrown away once the
# server certificate is signed, so the CA vouches for nothing else.
#
# Run again only to replace them: bash make.sh
set -euo pipefail
cd "$(dirname "$0")"

start=20000101000000Z
end=21260101000000Z
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
touch "$work/index.txt"
cat > "$work/ca.cnf" <<CNF
[ca]
default_ca = demo
[demo]
dir = $work
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
[root]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
openssl rand -hex 16 > "$work/serial"
sign() { # csr, extensions section, output
    openssl ca -batch -notext -config "$work/ca.cnf" -keyfile "$work/ca.key" \
        -startdate "$start" -enddate "$end" -extensions "$2" -in "$1" -out "$3" "${@:4}"
}

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key"
openssl req -new -key "$work/ca.key" -subj "/CN=tls-mailer demo CA (trusted by the demo only)" \
    -out "$work/ca.csr"
sign "$work/ca.csr" root ca.pem -selfsign

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key
openssl req -new -key server.key -subj "/CN=localhost" -out "$work/server.csr"
sign "$work/server.csr" server server.pem -cert ca.pem

openssl verify -CAfile ca.pem server.pem
