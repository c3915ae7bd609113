#!/usr/bin/env bash
# Second README command: install what the tests need, start a throwaway PostgreSQL and
# Redis on loopback, run ruff and pytest, stop the servers.
set -euo pipefail
cd "$(dirname "$0")/.."
source bin/services.sh
source bin/venv.sh
services_install
venv_ready requirements-test.txt
# RUFF_PATHS narrows the lint to the files one is working on (the default is everything).
.venv/bin/ruff check ${RUFF_PATHS:-.}
pg_start
redis_start
export DJANGO_SETTINGS_MODULE=loyalty_admin.settings.test
.venv/bin/python manage.py compilemessages --ignore=.venv -v 0
.venv/bin/python manage.py collectstatic --noinput -v 0
mkdir -p test-artifacts
.venv/bin/python -m pytest "$@"
