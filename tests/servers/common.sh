# Sourced by the tests/servers/*-up.sh and *-down.sh scripts. Not executable on its own.
# shellcheck shell=bash

# Everything the servers write lives under one directory (no whitespace allowed,
# the env files carry paths unquoted).
TLS_MAILER_SERVERS_DIR=${TLS_MAILER_SERVERS_DIR:-/tmp/tls-mailer-servers}
case $TLS_MAILER_SERVERS_DIR in
    /*) ;;
    *) echo "TLS_MAILER_SERVERS_DIR must be an absolute path" >&2; exit 2 ;;
esac
case $TLS_MAILER_SERVERS_DIR in
    *[[:space:]]*) echo "TLS_MAILER_SERVERS_DIR must not contain whitespace" >&2; exit 2 ;;
esac
SERVERS_SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CERT_DIR=$TLS_MAILER_SERVERS_DIR/certs

say() { echo "[${0##*/}] $*"; }
die() { echo "[${0##*/}] ERROR: $*" >&2; exit 1; }

require_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (it installs Debian packages and starts daemons); try: sudo $0"
}

# True when every named Debian package is installed.
pkgs_installed() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
    done
}

# apt-get install, with one apt-get update only if the first attempt fails.
apt_install() {
    pkgs_installed "$@" && return 0
    say "installing Debian packages: $*"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "$@" >"$TLS_MAILER_SERVERS_DIR/apt.log" 2>&1; then
        say "apt-get install failed; running apt-get update once and retrying"
        apt-get update -q >>"$TLS_MAILER_SERVERS_DIR/apt.log" 2>&1 || true
        apt-get install -y -q --no-install-recommends "$@" >>"$TLS_MAILER_SERVERS_DIR/apt.log" 2>&1 \
            || { tail -n 20 "$TLS_MAILER_SERVERS_DIR/apt.log" >&2; die "apt-get install $* failed (log: $TLS_MAILER_SERVERS_DIR/apt.log)"; }
    fi
}

# Python used to probe ports and to create the aiosmtpd venv.
find_python() {
    local p
    for p in python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import ssl, sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; then
            command -v "$p"; return 0
        fi
    done
    return 1
}

# wait_smtp MODE HOST PORT CAFILE TIMEOUT_SECONDS
# MODE is "tls" (implicit TLS, certificate checked against CAFILE and HOST),
# "plain" (only the 220 greeting) or "unix" (the greeting on the Unix socket
# HOST; PORT and CAFILE unused). Succeeds once a 220 greeting is read.
wait_smtp() {
    local mode=$1 host=$2 port=$3 ca=$4 limit=$5 py
    py=$(find_python) || die "python3 not found (needed to probe the ports)"
    "$py" - "$mode" "$host" "$port" "$ca" "$limit" <<'PY'
import socket, ssl, sys, time
mode, host, port, ca, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
deadline = time.monotonic() + limit
last = None
while time.monotonic() < deadline:
    try:
        if mode == "unix":
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(host)
        else:
            s = socket.create_connection((host, port), timeout=5)
        if mode == "tls":
            ctx = ssl.create_default_context(cafile=ca)
            ctx.check_hostname = False  # the wrong-host port is probed too
            s = ctx.wrap_socket(s)
        banner = s.recv(512)
        s.close()
        if banner.startswith(b"220"):
            sys.exit(0)
        last = "unexpected greeting %r" % banner
    except OSError as e:
        last = str(e)
    time.sleep(0.2)
where = host if mode == "unix" else "%s:%d" % (host, port)
print("no SMTP greeting on %s within %.0fs: %s" % (where, limit, last), file=sys.stderr)
sys.exit(1)
PY
}

# Refuse to start when a port is taken by something else.
port_free() {
    ! ss -Hltn "( sport = :$1 )" 2>/dev/null | grep -q .
}

ipv6_loopback() {
    [ -r /proc/net/if_inet6 ] && grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6
}

# The pid in pid file $1 when that process is alive; fails otherwise.
live_pid() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(tr -d ' \n' < "$1")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

# await_exit PID WHAT: PID was asked to stop; wait up to 10 s for it to go,
# then SIGKILL it (WHAT names it in the message).
await_exit() {
    local pid=$1 what=$2
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null || return 0
    say "$what $pid still running after 10 s; sending SIGKILL to it"
    kill -KILL "$pid" 2>/dev/null || true
}

# await_ports_free PORT...: a daemon's children can outlive it for a moment;
# wait up to 5 s until none of the ports has a listener, else die.
await_ports_free() {
    local busy p
    for _ in $(seq 1 50); do
        busy=no
        for p in "$@"; do port_free "$p" || busy=yes; done
        [ "$busy" = no ] && return 0
        sleep 0.1
    done
    die "ports still listening after stop: $*"
}
