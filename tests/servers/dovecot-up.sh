#!/usr/bin/env bash
# dovecot-up.sh: start Dovecot's LMTP server (Debian's dovecot-lmtpd and
# dovecot-core) as an isolated instance for the LMTP suite: a Unix socket at
# $TLS_MAILER_SERVERS_DIR/dovecot/run/lmtp and loopback TCP on
# $DOVECOT_LMTP_PORT (default 12024), no TLS, no AUTH (LMTP has none here).
# Users alice, bob and full at example.test come from a passwd-file userdb;
# each delivery goes to $TLS_MAILER_SERVERS_DIR/dovecot/maildir/USER (a
# Maildir). "full" has a 1 KiB quota, so a message larger than that is
# refused for it, and only for it, after the data. Any other recipient is
# unknown to Dovecot.
#
# Only the instance's own configuration is used (dovecot -c, its own
# base_dir and instance_name): the package's system instance is never
# started (policy-rc.d, or systemctl disable if it was). Mail is stored as
# the system user tls-mailer-vmail, created on first use (Dovecot delivers
# as no root). Idempotent: a running instance is stopped and started afresh
# with empty Maildirs and log.
# Writes $TLS_MAILER_SERVERS_DIR/dovecot.env (default /tmp/tls-mailer-servers).
set -euo pipefail
# shellcheck source=tests/servers/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_root

LMTP_PORT=${DOVECOT_LMTP_PORT:-12024}

DV=$TLS_MAILER_SERVERS_DIR/dovecot
ETC=$DV/etc
CONF=$ETC/dovecot.conf
RUN=$DV/run
LOG_DIR=$DV/log
LOG=$LOG_DIR/dovecot.log
MAILDIR=$DV/maildir
SOCKET=$RUN/lmtp
ENV_FILE=$TLS_MAILER_SERVERS_DIR/dovecot.env
VMAIL_USER=tls-mailer-vmail
DOMAIN=example.test
QUOTA_USER=full

mkdir -p "$TLS_MAILER_SERVERS_DIR" "$DV"
chmod 755 "$TLS_MAILER_SERVERS_DIR" "$DV"

# --- packages -----------------------------------------------------------------
apt_install dovecot-core dovecot-lmtpd
# A package install may have started the system instance (where init runs):
# the tests use their own, so keep the system one off.
systemctl disable --now dovecot.service >/dev/null 2>&1 || true

if ! getent passwd "$VMAIL_USER" >/dev/null; then
    say "creating the system user $VMAIL_USER (Dovecot stores mail as no root)"
    getent group "$VMAIL_USER" >/dev/null || groupadd --system "$VMAIL_USER"
    useradd --system --gid "$VMAIL_USER" --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$VMAIL_USER" || die "useradd $VMAIL_USER failed"
fi
VMAIL_UID=$(id -u "$VMAIL_USER")
VMAIL_GID=$(id -g "$VMAIL_USER")

# --- stop a previous run of this instance ---------------------------------------
"$SERVERS_SCRIPT_DIR/dovecot-down.sh" --keep-env >/dev/null || die "could not stop the previous instance"
rm -f "$ENV_FILE"
if command -v ss >/dev/null && ! port_free "$LMTP_PORT"; then
    ss -ltnp "( sport = :$LMTP_PORT )" >&2 || true
    die "port $LMTP_PORT is already in use"
fi

rm -rf "$ETC" "$RUN" "$LOG_DIR" "$MAILDIR" "$DV/state"
mkdir -p "$ETC" "$RUN" "$LOG_DIR" "$MAILDIR" "$DV/state"
chown "$VMAIL_USER:$VMAIL_USER" "$MAILDIR"
chmod 755 "$MAILDIR"

# --- configuration ------------------------------------------------------------------
# user:password:uid:gid:gecos:home:shell:extra fields (no password: LMTP
# only looks users up).
cat > "$ETC/users" <<CF
alice::$VMAIL_UID:$VMAIL_GID::$MAILDIR/alice::
bob::$VMAIL_UID:$VMAIL_GID::$MAILDIR/bob::
$QUOTA_USER::$VMAIL_UID:$VMAIL_GID::$MAILDIR/$QUOTA_USER::userdb_quota_rule=*:storage=1K
CF
chmod 644 "$ETC/users"

cat > "$CONF" <<CF
# Written by tests/servers/dovecot-up.sh: an LMTP-only Dovecot for tests.
instance_name = tls-mailer-dovecot
base_dir = $RUN
state_dir = $DV/state
protocols = lmtp
listen = 127.0.0.1
log_path = $LOG
info_log_path = $LOG
ssl = no
auth_mechanisms = plain
disable_plaintext_auth = no
first_valid_uid = $VMAIL_UID
last_valid_uid = $VMAIL_UID
mail_location = maildir:~/Maildir
# The recipient's local part is the user; the domain must be ours.
auth_username_format = %Ln
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no
# The quota is checked once the message is in, for each recipient.
lmtp_rcpt_check_quota = no
mail_plugins = quota
plugin {
  quota = maildir:User quota
  quota_rule = *:storage=0
}

passdb {
  driver = passwd-file
  args = $ETC/users
}
userdb {
  driver = passwd-file
  args = $ETC/users
}

service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
# Services this instance does not use listen nowhere.
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
CF
chmod 644 "$CONF"
doveconf -c "$CONF" -n >"$DV/check.log" 2>&1 || { cat "$DV/check.log" >&2; die "doveconf rejects $CONF"; }
DOVECOT_VERSION=$(dovecot --version | awk '{ print $1 }')

# --- start ------------------------------------------------------------------------
dovecot -c "$CONF" >"$DV/start.log" 2>&1 \
    || { cat "$DV/start.log" >&2; tail -n 20 "$LOG" 2>/dev/null >&2; die "dovecot failed to start"; }

# Up once the socket answers with an LMTP greeting.
if ! wait_smtp unix "$SOCKET" 0 /dev/null 30; then
    tail -n 30 "$LOG" 2>/dev/null >&2
    "$SERVERS_SCRIPT_DIR/dovecot-down.sh" >/dev/null 2>&1 || true
    die "Dovecot did not answer on $SOCKET (log: $LOG)"
fi
wait_smtp plain 127.0.0.1 "$LMTP_PORT" /dev/null 30 || die "Dovecot did not answer on 127.0.0.1:$LMTP_PORT"

cat > "$ENV_FILE.tmp" <<ENV
# Written by tests/servers/dovecot-up.sh. Values are never quoted and contain no spaces.
DOVECOT_SOCKET=$SOCKET
DOVECOT_HOST=127.0.0.1
DOVECOT_LMTP_PORT=$LMTP_PORT
DOVECOT_MAILDIR_BASE=$MAILDIR
DOVECOT_DOMAIN=$DOMAIN
DOVECOT_USERS=alice,bob
DOVECOT_QUOTA_USER=$QUOTA_USER
DOVECOT_LOG=$LOG
DOVECOT_CONFIG=$CONF
DOVECOT_VERSION=$DOVECOT_VERSION
ENV
mv -f "$ENV_FILE.tmp" "$ENV_FILE"

say "Dovecot $DOVECOT_VERSION LMTP up: $SOCKET and 127.0.0.1:$LMTP_PORT"
say "env file: $ENV_FILE"
