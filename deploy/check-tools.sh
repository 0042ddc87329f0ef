#!/bin/sh
# The system tools `make test` needs (looked up on PATH; the Makefile adds /usr/sbin for mosquitto).
# All there: silent. Missing, as root with apt-get (Debian/Ubuntu): installs them. Otherwise one
# line on stderr naming the exact install command, and exit 1.
set -eu
# tool:package
TOOLS="mosquitto:mosquitto openssl:openssl docker-compose:docker-compose chromium:chromium"

missing() {
    packages=""
    for pair in $TOOLS; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || packages="$packages ${pair#*:}"
    done
    # The Makefile passes PYTHON and VENV: making the venv needs ensurepip (Debian: python3-venv).
    if [ -n "${PYTHON:-}" ] && [ ! -x "${VENV:-.venv}/bin/python" ] \
        && ! "$PYTHON" -c "import ensurepip" >/dev/null 2>&1; then
        packages="$packages python3-venv"
    fi
    echo "$packages"
}

packages=$(missing)
[ -z "$packages" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "make test: installing$packages (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $packages >/dev/null
    packages=$(missing)
    [ -z "$packages" ] && exit 0
    echo "make test: still missing after apt-get:$packages" >&2
    exit 1
fi
echo "make test needs$packages: sudo apt-get install -y$packages" >&2
exit 1
