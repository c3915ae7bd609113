# Sourced: create .venv once and install the given requirements file when it changed.
# shellcheck shell=bash
venv_ready() {
    local requirements=$1
    [ -x .venv/bin/python ] || python3 -m venv .venv
    local stamp=".venv/.installed-$(basename "$requirements")"
    if [ ! -f "$stamp" ] || [ "$requirements" -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ]; then
        .venv/bin/pip install -q --disable-pip-version-check -r "$requirements"
        touch "$stamp"
    fi
}
