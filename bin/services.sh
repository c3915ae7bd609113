# Sourced by bin/test.sh and bench scripts: throwaway PostgreSQL and Redis on loopback.
# Defines services_install, pg_start, redis_start; both servers stop on EXIT.
# shellcheck shell=bash

services_install() {
    # Install the Debian packages the tests need, once; nothing here is done by hand.
    local missing=()
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium chromium-driver)
    command -v msgfmt >/dev/null 2>&1 || missing+=(gettext)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "Installing ${missing[*]} ..."
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

_services_stop() {
    if [ -n "${PGTMP:-}" ] && [ -d "$PGTMP/data" ]; then
        $PG_AS "$PGBIN/pg_ctl" -D "$PGTMP/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$PGTMP"
    fi
    if [ -n "${RDIR:-}" ] && [ -f "$RDIR/redis.pid" ]; then
        kill "$(cat "$RDIR/redis.pid")" 2>/dev/null || true
        rm -rf "$RDIR"
    fi
}

# pg_start [durable]: start a cluster on a free port and export DATABASE_URL.
# Tests run with fsync off; benchmarks pass "durable" to keep PostgreSQL's defaults.
pg_start() {
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    PGTMP=$(mktemp -d)
    PGPORT=$(free_port)
    PG_AS=""
    if [ "$(id -u)" -eq 0 ]; then
        # initdb refuses to run as root.
        chown postgres:postgres "$PGTMP"
        PG_AS="runuser -u postgres --"
    fi
    local extra="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [ "${1:-}" = "durable" ] && extra=""
    # C collation (byte order, fast) but a UTF-8 ctype so upper() and trigrams know Cyrillic.
    $PG_AS "$PGBIN/initdb" -D "$PGTMP/data" -U postgres --auth=trust -E UTF8 --locale=C --lc-ctype=C.UTF-8 \
        --no-sync >/dev/null
    $PG_AS "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGTMP -c max_connections=200 $extra ${PG_EXTRA_OPTS:-}" \
        start >/dev/null
    trap _services_stop EXIT
    "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres loyalty
    export PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGBIN
    export DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/loyalty"
}

# redis_start: start Redis on a free port and export REDIS_URL.
redis_start() {
    RDIR=$(mktemp -d)
    local port
    port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$RDIR" \
        --daemonize yes --pidfile "$RDIR/redis.pid" --logfile "$RDIR/redis.log" >/dev/null
    trap _services_stop EXIT
    export REDIS_URL="redis://127.0.0.1:$port/0"
}
