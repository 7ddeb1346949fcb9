#!/usr/bin/env bash
# Quickstart, command 2: install the test dependencies and run the whole test suite
# (real mongod, real worker and server processes, real git, Chromium via Playwright).
# Extra arguments go to pytest (e.g. -k claim, -m "not browser").
source "$(dirname "$0")/bootstrap.sh"
bootstrap_system git chromium iproute2 nftables systemd ca-certificates
bootstrap_venv "dev,embedded,ml"
bootstrap_web_assets
cd "$ROOT"
# The import contracts (layers; only fsm.store talks to MongoDB) first: a broken one fails CI at once.
"$VENV/bin/lint-imports" --config "$ROOT/setup.cfg"
set +e
"$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
code=$?
set -e
# pytest's 5 means "no tests collected": a red run, never a silent green one.
exit $code
