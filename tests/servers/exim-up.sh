#!/usr/bin/env bash
# exim-up.sh: start Exim (Debian's exim4-daemon-light) on 127.0.0.1 as the
# third real server of the integration suite: implicit TLS on
# $EXIM_IMPLICIT_PORT (default 12465), required STARTTLS on
# $EXIM_STARTTLS_PORT (default 12587), implicit TLS with a certificate for
# another name on $EXIM_WRONGHOST_PORT (default 12466); AUTH PLAIN/LOGIN over
# TLS only; every address at example.test delivered to a Maildir.
#
# Exim and Postfix conflict as Debian packages, so Exim is not installed:
# its .debs are downloaded (apt-get download) and unpacked (dpkg-deb -x) into
# $TLS_MAILER_SERVERS_DIR/exim/pkg, once; the libraries it links are ordinary
# packages and are installed. The system user Debian-exim is created if
# missing (Exim looks it up at start). The configuration is
# tests/servers/exim/exim.conf, rendered into the instance directory.
# Idempotent: a running instance is stopped and started afresh with a clean
# spool, Maildir and log.
# Writes $TLS_MAILER_SERVERS_DIR/exim.env (default /tmp/tls-mailer-servers).
set -euo pipefail
# shellcheck source=tests/servers/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_root

IMPLICIT_PORT=${EXIM_IMPLICIT_PORT:-12465}
STARTTLS_PORT=${EXIM_STARTTLS_PORT:-12587}
WRONGHOST_PORT=${EXIM_WRONGHOST_PORT:-12466}

EX=$TLS_MAILER_SERVERS_DIR/exim
PKG=$EX/pkg
EXIM_BIN=$PKG/usr/sbin/exim4
ETC=$EX/etc
CONF=$ETC/exim.conf
SPOOL=$EX/spool
LOG_DIR=$EX/log
LOG=$LOG_DIR/mainlog
MAILDIR=$EX/maildir
PIDFILE=$EX/exim.pid
ENV_FILE=$TLS_MAILER_SERVERS_DIR/exim.env

DOMAIN=example.test
SIZE_LIMIT=26214400                      # 25 MiB
# Deliveries run as the Exim user: with -C, Exim's re-executed delivery
# process has given up root and could not switch to another user.
VMAIL_USER=Debian-exim
VMAIL_GROUP=Debian-exim
USER1=alice
PASS1=alice-exim-password
UTF8_USER=utf8
UTF8_PASS='pässwörd-🔑'
LONG_USER=longpass
LONG_PASS=$(printf 'exim-long-password-%0101d' 0)
[ ${#LONG_PASS} -eq 120 ] || die "internal: long password is ${#LONG_PASS} characters"
REJECT_PERM=reject-perm@$DOMAIN
REJECT_TEMP=reject-temp@$DOMAIN
UTF8_ADDRESS="jörg@$DOMAIN"

mkdir -p "$TLS_MAILER_SERVERS_DIR" "$EX"
chmod 755 "$TLS_MAILER_SERVERS_DIR" "$EX"

# --- packages -----------------------------------------------------------------
# Libraries exim4 (4.96, bookworm) links against: plain library packages that
# conflict with nothing, so they are installed normally.
apt_install openssl libidn12 libidn2-0 libgnutls30 libgnutls-dane0 libpcre2-8-0 libdb5.3 libnsl2 libcrypt1

if [ ! -x "$EXIM_BIN" ]; then
    say "downloading and unpacking exim4-daemon-light (not installed: it conflicts with Postfix)"
    dl=$(mktemp -d "$EX/.download.XXXXXX")
    chmod 755 "$dl"  # apt's _apt user writes the download here
    fetch() { (cd "$dl" && apt-get download exim4-daemon-light exim4-base exim4-config) >>"$TLS_MAILER_SERVERS_DIR/apt.log" 2>&1; }
    if ! fetch; then
        say "apt-get download failed; running apt-get update once and retrying"
        apt-get update -q >>"$TLS_MAILER_SERVERS_DIR/apt.log" 2>&1 || true
        fetch || { tail -n 20 "$TLS_MAILER_SERVERS_DIR/apt.log" >&2; rm -rf "$dl"; die "apt-get download exim4-daemon-light failed"; }
    fi
    rm -rf "$PKG.new"
    for deb in "$dl"/*.deb; do
        dpkg-deb -x "$deb" "$PKG.new" || { rm -rf "$dl" "$PKG.new"; die "dpkg-deb -x $deb failed"; }
    done
    rm -rf "$dl" "$PKG"
    mv "$PKG.new" "$PKG"
    [ -x "$EXIM_BIN" ] || die "$EXIM_BIN missing after unpacking"
fi
if missing=$(ldd "$EXIM_BIN" | grep 'not found'); then
    die "exim4 needs libraries that are not installed: $missing"
fi

if ! getent passwd Debian-exim >/dev/null; then
    say "creating the system user Debian-exim (Exim looks it up at start)"
    getent group Debian-exim >/dev/null || groupadd --system Debian-exim
    useradd --system --gid Debian-exim --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin Debian-exim || die "useradd Debian-exim failed"
fi

# --- stop a previous run of this instance ---------------------------------------
"$SERVERS_SCRIPT_DIR/exim-down.sh" --keep-env >/dev/null || die "could not stop the previous instance"
rm -f "$ENV_FILE"

for p in "$IMPLICIT_PORT" "$STARTTLS_PORT" "$WRONGHOST_PORT"; do
    if command -v ss >/dev/null && ! port_free "$p"; then
        ss -ltnp "( sport = :$p )" >&2 || true
        die "port $p is already in use"
    fi
done

# --- certificates ---------------------------------------------------------------
"$SERVERS_SCRIPT_DIR/make-certs.sh" "$CERT_DIR" >/dev/null
# Exim reads its key as root before it forks; keep a private copy anyway so the
# shared keys' modes stay as make-certs.sh set them.
rm -rf "$ETC" "$SPOOL" "$LOG_DIR" "$MAILDIR"
mkdir -p "$ETC" "$SPOOL" "$LOG_DIR" "$MAILDIR"
cp "$CERT_DIR"/localhost.pem "$CERT_DIR"/localhost-key.pem "$CERT_DIR"/wronghost.pem "$CERT_DIR"/wronghost-key.pem "$ETC/"
chown root:Debian-exim "$ETC"/*-key.pem
chmod 640 "$ETC"/*-key.pem
chown Debian-exim:Debian-exim "$SPOOL" "$LOG_DIR"
chmod 750 "$SPOOL" "$LOG_DIR"
chown "$VMAIL_USER:$VMAIL_GROUP" "$MAILDIR"
chmod 755 "$MAILDIR"

# --- configuration ------------------------------------------------------------------
render() { # the template with every @NAME@ replaced; values hold no '|'
    sed -e "s|@DOMAIN@|$DOMAIN|g" -e "s|@EXIM_BIN@|$EXIM_BIN|g" -e "s|@SPOOL@|$SPOOL|g" \
        -e "s|@LOG_DIR@|$LOG_DIR|g" -e "s|@IMPLICIT_PORT@|$IMPLICIT_PORT|g" \
        -e "s|@STARTTLS_PORT@|$STARTTLS_PORT|g" -e "s|@WRONGHOST_PORT@|$WRONGHOST_PORT|g" \
        -e "s|@CERT_DIR@|$ETC|g" -e "s|@SIZE_LIMIT@|$SIZE_LIMIT|g" -e "s|@ETC@|$ETC|g" \
        -e "s|@REJECT_PERM@|$REJECT_PERM|g" -e "s|@REJECT_TEMP@|$REJECT_TEMP|g" \
        -e "s|@MAILDIR@|$MAILDIR|g" -e "s|@VMAIL_USER@|$VMAIL_USER|g" \
        -e "s|@VMAIL_GROUP@|$VMAIL_GROUP|g" "$SERVERS_SCRIPT_DIR/exim/exim.conf"
}
render > "$CONF"
if grep -n '@[A-Z_]*@' "$CONF" >&2; then die "unreplaced placeholders in $CONF"; fi

cat > "$ETC/mailboxes" <<CF
# local part: Maildir under $MAILDIR (lsearch*: "*" is every other local part)
$USER1: $USER1
bob: bob
jörg: joerg
postmaster: postmaster
*: catchall
CF
cat > "$ETC/passwd" <<CF
$USER1: $PASS1
$UTF8_USER: $UTF8_PASS
$LONG_USER: $LONG_PASS
CF
chown root:Debian-exim "$CONF" "$ETC/mailboxes" "$ETC/passwd"
chmod 640 "$CONF" "$ETC/mailboxes" "$ETC/passwd"

EXIM_VERSION=$("$EXIM_BIN" -C "$CONF" -bV 2>&1 | sed -n 's/^Exim version \([^ ]*\).*/\1/p')
"$EXIM_BIN" -C "$CONF" -bV >"$EX/check.log" 2>&1 && [ -n "$EXIM_VERSION" ] \
    || { cat "$EX/check.log" >&2; die "exim -bV rejects $CONF"; }

# --- start ------------------------------------------------------------------------
# -bd: listening daemon (it detaches); -q15s: a queue runner, so a delivery
# that had to wait is retried soon; -oP: where its pid goes.
"$EXIM_BIN" -C "$CONF" -bd -q15s -oP "$PIDFILE" >"$EX/start.log" 2>&1 \
    || { cat "$EX/start.log" >&2; tail -n 20 "$LOG_DIR/paniclog" "$LOG" 2>/dev/null >&2; die "exim -bd failed"; }

ok=yes
wait_smtp tls 127.0.0.1 "$IMPLICIT_PORT" "$CERT_DIR/ca.pem" 30 || ok=no
wait_smtp plain 127.0.0.1 "$STARTTLS_PORT" "$CERT_DIR/ca.pem" 30 || ok=no
wait_smtp tls 127.0.0.1 "$WRONGHOST_PORT" "$CERT_DIR/ca.pem" 30 || ok=no
if [ "$ok" = no ]; then
    cat "$EX/start.log" >&2
    tail -n 30 "$LOG_DIR/paniclog" "$LOG" 2>/dev/null >&2
    "$SERVERS_SCRIPT_DIR/exim-down.sh" >/dev/null 2>&1 || true
    die "Exim did not answer on every port (log: $LOG)"
fi

cat > "$ENV_FILE.tmp" <<ENV
# Written by tests/servers/exim-up.sh. Values are never quoted and contain no spaces.
EXIM_HOST=127.0.0.1
EXIM_IMPLICIT_PORT=$IMPLICIT_PORT
EXIM_STARTTLS_PORT=$STARTTLS_PORT
EXIM_WRONGHOST_PORT=$WRONGHOST_PORT
EXIM_WRONGHOST_NAME=wrong.example.invalid
EXIM_CA=$CERT_DIR/ca.pem
EXIM_MAILDIR_BASE=$MAILDIR
EXIM_LOG=$LOG
EXIM_CONFIG=$CONF
EXIM_BIN=$EXIM_BIN
EXIM_USER=$USER1
EXIM_PASSWORD=$PASS1
EXIM_UTF8_USER=$UTF8_USER
EXIM_UTF8_PASSWORD=$UTF8_PASS
EXIM_LONG_USER=$LONG_USER
EXIM_LONG_PASSWORD=$LONG_PASS
EXIM_DOMAIN=$DOMAIN
EXIM_UTF8_ADDRESS=$UTF8_ADDRESS
EXIM_REJECT_PERM=$REJECT_PERM
EXIM_REJECT_TEMP=$REJECT_TEMP
EXIM_VERSION=$EXIM_VERSION
EXIM_SIZE_LIMIT=$SIZE_LIMIT
ENV
mv -f "$ENV_FILE.tmp" "$ENV_FILE"

say "Exim $EXIM_VERSION up on 127.0.0.1: implicit TLS $IMPLICIT_PORT, STARTTLS $STARTTLS_PORT, wrong-host TLS $WRONGHOST_PORT"
say "env file: $ENV_FILE"
