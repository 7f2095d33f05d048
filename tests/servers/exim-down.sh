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
    [ -s "$PIDFILE" ] || return 1
    pid=$(tr -d ' \n' < "$PIDFILE")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # Only our daemon: its command line names our configuration file.
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-C $CONF" || return 1
    echo "$pid"
}

if pid=$(daemon_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "daemon $pid still running after 10 s; sending SIGKILL to it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    say "Exim test instance stopped"
else
    say "Exim test instance was not running"
fi

# Receiving processes can outlive the daemon for a moment: wait until none of
# the instance's ports has a listener.
if [ -f "$CONF" ] && command -v ss >/dev/null; then
    ports=$(sed -n 's/^daemon_smtp_ports *= *//p' "$CONF" | tr -d ' ' | tr ':' ' ')
    for _ in $(seq 1 50); do
        busy=no
        for p in $ports; do port_free "$p" || busy=yes; done
        [ "$busy" = no ] && break
        sleep 0.1
    done
    [ "$busy" = no ] || die "ports still listening after stop: $ports"
fi
