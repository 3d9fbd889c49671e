#!/usr/bin/env bash
# pgctl.sh: a throwaway PostgreSQL cluster for the API's store tests and for
# trying the API on PostgreSQL locally. Nothing here is for production.
#
#   pgctl.sh start DIR [PORT]   install PostgreSQL's Debian package if no
#                               server binaries are found (needs root), create
#                               a cluster under DIR on first start, start it
#                               on 127.0.0.1:PORT (a free port when omitted)
#                               and print its SQLAlchemy URL
#   pgctl.sh url DIR            print the URL of the cluster under DIR
#   pgctl.sh status DIR         exit 0 if it runs, 3 if not
#   pgctl.sh stop DIR [--wipe]  fast shutdown; --wipe also deletes DIR
#
# The server never runs as root: when this script runs as root, the cluster
# belongs to AMIWATCH_PG_USER (default: postgres, the account the Debian
# package creates). It listens on TCP 127.0.0.1 only (no unix socket), trusts
# local connections and runs with fsync off: a test fixture, not a store.
# The URL names the superuser `amiwatch` and the database `amiwatch`.
#
# Environment: AMIWATCH_PG_USER [postgres when root], AMIWATCH_PG_START_TIMEOUT [60 s].
set -euo pipefail

die() {
    echo "pgctl: $*" >&2
    exit 1
}

[[ $# -ge 2 ]] || die "usage: pgctl.sh start|url|status|stop DIR [PORT|--wipe]"
CMD=$1
DIR=$2
START_TIMEOUT=${AMIWATCH_PG_START_TIMEOUT:-60}

find_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x $d/initdb && -x $d/pg_ctl ]] && { echo "$d"; return 0; }
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    return 1
}

ensure_installed() {
    BINDIR=$(find_bindir) && return 0
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL server binaries not found and not root: apt-get install postgresql"
    echo "pgctl: installing PostgreSQL (apt-get install postgresql)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BINDIR=$(find_bindir) || die "postgresql installed but initdb/pg_ctl not found"
}

# Run a command as the cluster's owner (never root).
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u "$OWNER" -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

url() {
    echo "postgresql+psycopg://amiwatch@127.0.0.1:$(cat "$DIR/port")/amiwatch"
}

running() {
    [[ -f $DIR/data/postmaster.pid && -f $DIR/port ]] || return 1
    local pid
    pid=$(head -1 "$DIR/data/postmaster.pid")
    kill -0 "$pid" 2>/dev/null
}

if [[ $(id -u) -eq 0 ]]; then
    OWNER=${AMIWATCH_PG_USER:-postgres}
    id "$OWNER" >/dev/null 2>&1 || ensure_installed  # the package creates the account
    id "$OWNER" >/dev/null 2>&1 || die "user $OWNER does not exist (set AMIWATCH_PG_USER)"
else
    OWNER=$(id -un)
fi

case $CMD in
start)
    ensure_installed
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    if running; then
        url
        exit 0
    fi
    [[ $(id -u) -eq 0 ]] && chown "$OWNER" "$DIR"
    if [[ ! -f $DIR/data/PG_VERSION ]]; then
        rm -rf "$DIR/data"
        as_owner "$BINDIR/initdb" -D "$DIR/data" -U amiwatch --auth=trust -E UTF8 --no-sync >"$DIR/initdb.log" 2>&1 \
            || { tail -20 "$DIR/initdb.log" >&2; die "initdb failed (log: $DIR/initdb.log)"; }
    fi
    PORT=${3:-$(free_port)}
    echo "$PORT" >"$DIR/port"
    if ! as_owner "$BINDIR/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t "$START_TIMEOUT" \
        -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >"$DIR/pg_ctl.log" 2>&1; then
        tail -20 "$DIR/postgres.log" >&2 || true
        die "PostgreSQL did not start (log: $DIR/postgres.log)"
    fi
    if ! as_owner "$BINDIR/psql" -h 127.0.0.1 -p "$PORT" -U amiwatch -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'amiwatch'" | grep -q 1; then
        as_owner "$BINDIR/createdb" -h 127.0.0.1 -p "$PORT" -U amiwatch amiwatch
    fi
    url
    ;;
url)
    [[ -f $DIR/port ]] || die "no cluster under $DIR"
    url
    ;;
status)
    running && { url; exit 0; }
    exit 3
    ;;
stop)
    if running; then
        ensure_installed
        as_owner "$BINDIR/pg_ctl" -D "$DIR/data" -m fast -w -t 30 stop >/dev/null
    fi
    [[ ${3:-} == --wipe ]] && rm -rf "$DIR"
    exit 0
    ;;
*)
    die "unknown command $CMD (start|url|status|stop)"
    ;;
esac
