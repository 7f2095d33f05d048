#!/usr/bin/env bash
# exim-down.sh: stop the Exim test instance started by exim-up.sh and remove
# its env file. Mail, spool, log and the unpacked package stay on disk
# (exim-up.sh wipes all but the package). Safe to run when nothing is running.
#   --keep-env   leave exim.env in place (used by exim-up.sh itself)
set -euo pipefail
# shellcheck source=tests/servers/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_root

EX=$TLS_MAILER_SERVERS_DIR/exim
CONF=$EX/etc/exim.conf
PIDFILE=$EX/exim.pid
ENV_FILE=$TLS_MAILER_SERVERS_DIR/exim.env

[ "${1:-}" = --keep-env ] || rm -f "$ENV_FILE"

daemon_pid() {
    local pid
    pid=$(live_pid "$PIDFILE") || return 1
    # Only our daemon: its command line names our configuration file.
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-C $CONF" || return 1
    echo "$pid"
}

if pid=$(daemon_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    await_exit "$pid" daemon
    rm -f "$PIDFILE"
    say "Exim test instance stopped"
else
    say "Exim test instance was not running"
fi

# Receiving processes can outlive the daemon for a moment: wait until none of
# the instance's ports has a listener.
if [ -f "$CONF" ] && command -v ss >/dev/null; then
    ports=$(sed -n 's/^daemon_smtp_ports *= *//p' "$CONF" | tr -d ' ' | tr ':' ' ')
    # shellcheck disable=SC2086 # one word a port
    await_ports_free $ports
fi
