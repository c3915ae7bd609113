#!/usr/bin/env bash
# First README command: set everything up on the embedded defaults and serve the app.
# Safe to run again: migrations, demo data and logins are only created when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bin/venv.sh
venv_ready requirements.txt
command -v msgfmt >/dev/null 2>&1 || {
    echo "Installing gettext (to compile translations) ..."
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq gettext >/dev/null
}
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-loyalty_admin.settings.local}
mkdir -p var
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py compilemessages --ignore=.venv -v 0
.venv/bin/python manage.py collectstatic --noinput -v 0
.venv/bin/python manage.py demo_seed --members "${DEMO_MEMBERS:-300}" --if-empty
.venv/bin/python manage.py demo_programme
.venv/bin/python manage.py demo_logins
.venv/bin/python manage.py demo_campaigns
.venv/bin/python manage.py demo_surveys
.venv/bin/python manage.py demo_dashboards
echo
echo "Loyalty back-office: http://127.0.0.1:${PORT:-8000}/  (logins: see README.md)"
exec .venv/bin/python manage.py runserver "127.0.0.1:${PORT:-8000}"
