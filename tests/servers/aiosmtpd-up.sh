#!/usr/bin/env bash
# aiosmtpd-up.sh: start aiosmtpd (Python) on loopback as the second,
# independent SMTP server of the integration suite: implicit TLS on
# $AIOSMTPD_IMPLICIT_PORT (default 11465), required STARTTLS on
# $AIOSMTPD_STARTTLS_PORT (default 11587), AUTH PLAIN/LOGIN, messages spooled
# to files. Uses the test PKI of make-certs.sh (the same CA as Postfix).
# Idempotent: a running instance is stopped first.
# Writes $TLS_MAILER_SERVERS_DIR/aiosmtpd.env (default /tmp/tls-mailer-servers).
set -euo pipefail
# shellcheck source=tests/servers/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

IMPLICIT_PORT=${AIOSMTPD_IMPLICIT_PORT:-11465}
STARTTLS_PORT=${AIOSMTPD_STARTTLS_PORT:-11587}
DIR=$TLS_MAILER_SERVERS_DIR/aiosmtpd
SPOOL=$DIR/spool
PIDFILE=$DIR/server.pid
LOG=$DIR/server.log
ENV_FILE=$TLS_MAILER_SERVERS_DIR/aiosmtpd.env
USER_NAME=bob
PASSWORD='bob-password-2026'

mkdir -p "$TLS_MAILER_SERVERS_DIR"
py=$(find_python) || die "python3 (3.8 or later) is needed"
if ! "$py" -c 'import aiosmtpd' 2>/dev/null; then
    say "installing aiosmtpd with pip"
    "$py" -m pip install --quiet --disable-pip-version-check aiosmtpd==1.4.6 \
        || die "pip install aiosmtpd==1.4.6 failed"
fi
AIOSMTPD_VERSION=$("$py" -c 'import aiosmtpd; print(aiosmtpd.__version__)')

"$SERVERS_SCRIPT_DIR/aiosmtpd-down.sh" >/dev/null
for p in "$IMPLICIT_PORT" "$STARTTLS_PORT"; do
    if command -v ss >/dev/null && ! port_free "$p"; then
        die "port $p is already in use"
    fi
done

"$SERVERS_SCRIPT_DIR/make-certs.sh" "$CERT_DIR" >/dev/null
rm -rf "$SPOOL"
mkdir -p "$SPOOL"

nohup "$py" "$SERVERS_SCRIPT_DIR/aiosmtpd_server.py" \
    --implicit-port "$IMPLICIT_PORT" --starttls-port "$STARTTLS_PORT" \
    --cert "$CERT_DIR/localhost.pem" --key "$CERT_DIR/localhost-key.pem" \
    --spool "$SPOOL" --user "$USER_NAME" --password "$PASSWORD" \
    >"$LOG" 2>&1 </dev/null &
echo $! > "$PIDFILE"

ok=yes
wait_smtp tls 127.0.0.1 "$IMPLICIT_PORT" "$CERT_DIR/ca.pem" 30 || ok=no
wait_smtp plain 127.0.0.1 "$STARTTLS_PORT" "$CERT_DIR/ca.pem" 30 || ok=no
if [ "$ok" = no ]; then
    tail -n 30 "$LOG" >&2 || true
    "$SERVERS_SCRIPT_DIR/aiosmtpd-down.sh" >/dev/null 2>&1 || true
    die "aiosmtpd did not answer (log: $LOG)"
fi

cat > "$ENV_FILE.tmp" <<ENV
# Written by tests/servers/aiosmtpd-up.sh. Values are never quoted and contain no spaces.
AIOSMTPD_IMPLICIT_PORT=$IMPLICIT_PORT
AIOSMTPD_STARTTLS_PORT=$STARTTLS_PORT
AIOSMTPD_CA=$CERT_DIR/ca.pem
AIOSMTPD_SPOOL=$SPOOL
AIOSMTPD_USER=$USER_NAME
AIOSMTPD_PASSWORD=$PASSWORD
AIOSMTPD_VERSION=$AIOSMTPD_VERSION
AIOSMTPD_SIZE_LIMIT=41943040
ENV
mv -f "$ENV_FILE.tmp" "$ENV_FILE"
say "aiosmtpd $AIOSMTPD_VERSION up on 127.0.0.1: implicit TLS $IMPLICIT_PORT, STARTTLS $STARTTLS_PORT"
say "env file: $ENV_FILE"
