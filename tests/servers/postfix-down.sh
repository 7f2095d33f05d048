#!/usr/bin/env bash
# postfix-down.sh: stop the isolated Postfix test instance started by
# postfix-up.sh and remove its env file. Mail, log and config stay on disk for
# inspection (postfix-up.sh wipes them). Safe to run when nothing is running.
#   --keep-env   leave postfix.env in place (used by postfix-up.sh itself)
set -euo pipefail
# shellcheck source=tests/servers/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_root

PF=$TLS_MAILER_SERVERS_DIR/postfix
ETC=$PF/etc
ENV_FILE=$TLS_MAILER_SERVERS_DIR/postfix.env
PIDFILE=$PF/queue/pid/master.pid

[ "${1:-}" = --keep-env ] || rm -f "$ENV_FILE"

master_pid() {
    local pid
    pid=$(live_pid "$PIDFILE") || return 1
    # Only our instance's master: its command line names no other config.
    grep -qa 'master' "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

if [ ! -f "$ETC/main.cf" ] || ! command -v postfix >/dev/null; then
    say "no tls-mailer Postfix instance configured under $PF; nothing to stop"
    exit 0
fi

if pid=$(master_pid); then
    postfix -c "$ETC" stop >/dev/null 2>&1 || true
    await_exit "$pid" master
    say "Postfix test instance stopped"
else
    say "Postfix test instance was not running"
fi

# Daemon children (smtpd) can outlive the master for a moment: wait until none
# of this instance's ports (the numeric services in master.cf) has a listener.
ports=$(awk '$1 ~ /^[0-9]+$/ && $2 == "inet" { print $1 }' "$ETC/master.cf")
if command -v ss >/dev/null; then
    # shellcheck disable=SC2086 # one word a port
    await_ports_free $ports
fi
