#!/usr/bin/env bash
# dovecot-down.sh: stop the isolated Dovecot LMTP instance started by
# dovecot-up.sh and remove its env file. Maildirs, log and config stay on
# disk for inspection (dovecot-up.sh wipes them). Safe to run when nothing
# is running.
#   --keep-env   leave dovecot.env in place (used by dovecot-up.sh itself)
set -euo pipefail
# shellcheck source=tests/servers/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_root

DV=$TLS_MAILER_SERVERS_DIR/dovecot
CONF=$DV/etc/dovecot.conf
PIDFILE=$DV/run/master.pid
ENV_FILE=$TLS_MAILER_SERVERS_DIR/dovecot.env

[ "${1:-}" = --keep-env ] || rm -f "$ENV_FILE"

if [ ! -f "$CONF" ] || ! command -v dovecot >/dev/null; then
    say "no tls-mailer Dovecot instance configured under $DV; nothing to stop"
    exit 0
fi

master_pid() {
    local pid
    pid=$(live_pid "$PIDFILE") || return 1
    # Only our instance's master: its command line names our config.
    grep -qa "$CONF" "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

if pid=$(master_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    await_exit "$pid" master
    say "Dovecot test instance stopped"
else
    say "Dovecot test instance was not running"
fi
