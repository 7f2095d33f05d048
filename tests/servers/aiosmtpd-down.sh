#!/usr/bin/env bash
# aiosmtpd-down.sh: stop the aiosmtpd test server started by aiosmtpd-up.sh
# and remove its env file. The spool stays for inspection. Safe to run when
# nothing is running.
set -euo pipefail
# shellcheck source=tests/servers/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DIR=$TLS_MAILER_SERVERS_DIR/aiosmtpd
PIDFILE=$DIR/server.pid
rm -f "$TLS_MAILER_SERVERS_DIR/aiosmtpd.env"

if [ -s "$PIDFILE" ]; then
    pid=$(tr -d ' \n' < "$PIDFILE")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
        && grep -qa aiosmtpd_server.py "/proc/$pid/cmdline" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        say "aiosmtpd stopped"
    else
        say "aiosmtpd was not running"
    fi
    rm -f "$PIDFILE"
else
    say "aiosmtpd was not running"
fi
