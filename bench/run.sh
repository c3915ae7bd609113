#!/usr/bin/env bash
# Benchmarks (make bench): a throwaway PostgreSQL with default durability, seeded with
# BENCH_MEMBERS members (default 1,000,000), then each benchmark script in turn (ledger
# postings vs pgbench, the member admin, ...). Output goes to the terminal and to
# bench/results/<time>-<members>.txt. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bin/services.sh
source bin/venv.sh

BENCH_MEMBERS=${BENCH_MEMBERS:-1000000}
# Extra server options, e.g. BENCH_PG_OPTS="-c shared_buffers=2GB"; empty keeps every
# default (fsync, synchronous_commit and full_page_writes are never touched here).
PG_EXTRA_OPTS=${BENCH_PG_OPTS:-}
export PG_EXTRA_OPTS

if ! ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1; then
    echo "Installing postgresql (server and pgbench) ..."
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq postgresql >/dev/null
fi
venv_ready requirements.txt

mkdir -p bench/results
log="bench/results/$(date -u +%Y%m%dT%H%M%SZ)-${BENCH_MEMBERS}.txt"
exec > >(tee "$log") 2>&1

pg_start durable
psql_() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

export DJANGO_SETTINGS_MODULE=loyalty_admin.settings.local DEBUG=0
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(free -g | awk '/Mem/ {print $2}') GB RAM"
echo "Load average before: $(cut -d" " -f1-3 /proc/loadavg)"
psql_ -d loyalty -tA -c "SELECT version()"
psql_ -d loyalty -tA -c "SELECT string_agg(name || '=' || current_setting(name), ', ')
    FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes',
    'wal_sync_method', 'shared_buffers', 'max_wal_size', 'work_mem', 'lc_ctype')"

.venv/bin/python manage.py migrate --noinput -v 0
.venv/bin/python manage.py collectstatic --noinput -v 0  # whitenoise warns without it

echo
echo "== Seeding ${BENCH_MEMBERS} members (goal: 100,000 in under 120 s; load average: $(cut -d" " -f1-3 /proc/loadavg))"
seconds_since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN {printf "%.1f", (b - a) / 1e9}'; }
started=$(date +%s%N)
.venv/bin/python manage.py demo_seed --members "$BENCH_MEMBERS"
echo "Seeding took $(seconds_since "$started") s (the command, from start to exit)"
started=$(date +%s%N)
psql_ -d loyalty -c "VACUUM ANALYZE"
echo "VACUUM ANALYZE took $(seconds_since "$started") s"
psql_ -d loyalty -tA -c "SELECT 'Database size: ' || pg_size_pretty(pg_database_size('loyalty'))"
psql_ -d loyalty -tA -c "SELECT 'Members whose balance differs from their ledger sum: ' || count(*)
    FROM members_member m LEFT JOIN (SELECT member_id, sum(amount) AS total
    FROM members_pointsentry GROUP BY member_id) l ON l.member_id = m.id
    WHERE m.points_balance <> coalesce(l.total, 0)"

echo
echo "== Ledger postings (load average: $(cut -d" " -f1-3 /proc/loadavg))"
.venv/bin/python bench/ledger_posting.py

echo
echo "== Member admin (load average: $(cut -d" " -f1-3 /proc/loadavg))"
.venv/bin/python bench/member_list.py

echo
echo "== Member export to CSV vs COPY (load average: $(cut -d" " -f1-3 /proc/loadavg))"
.venv/bin/python bench/member_export.py

echo
echo "== Tier evaluation, points expiry and redemptions (load average: $(cut -d" " -f1-3 /proc/loadavg))"
.venv/bin/python bench/programme.py

echo
echo "Results saved to $log"
