#!/usr/bin/env bash
# Quickstart, command 1: install Suanwang and start the whole system on this machine
# (embedded MongoDB, server with web pages on :8080, one local worker). Ctrl-C stops it.
# Extra arguments go to `suanwang up` (e.g. --port 9090 --data-dir /srv/suanwang).
source "$(dirname "$0")/bootstrap.sh"
bootstrap_system git ca-certificates
bootstrap_venv "embedded"
bootstrap_web_assets
exec "$VENV/bin/suanwang" up "$@"
