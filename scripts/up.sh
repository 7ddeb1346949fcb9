#!/usr/bin/env bash
# Quickstart, command 1: install Suanwang and start the whole system on this machine
# (embedded MongoDB, server with web pages on :8080, one local worker). Ctrl-C stops it.
# Extra arguments go to `suanwang up` (e.g. --port 9090 --data-dir /srv/suanwang).
source "$(dirname "$0")/bootstrap.sh"
USAGE="Usage: bash scripts/up.sh [SUANWANG UP OPTIONS]

Installs what is missing (system packages, the virtualenv .venv with suanwang[embedded], the
web pages' npm assets), then runs \`suanwang up\`: the embedded MongoDB, the server with its
web pages and API, and one local worker, until Ctrl-C.

Options (passed to \`suanwang up\`):
  --data-dir DIR      database, admin token, server URL and logs (default ~/.suanwang)
  --port P            HTTP port of the web pages and the API (default 8080)
  --host ADDR         HTTP address to listen on (default 127.0.0.1)
  --mongo URI         use this MongoDB instead of the embedded one
  --bind-ip IP        address the embedded MongoDB listens on (0.0.0.0: other machines' workers)
  --concurrency N     slots of the local worker (default: CPU count)
  --name NAME         name of the local worker (default: the hostname)
  --repo-root DIR     a directory whose git repositories admins may register (repeatable)
  -h, --help          this help (installs nothing)

Environment: SUANWANG_VENV (default .venv), PYTHON (default python3).
Another shell then uses it with the export lines \`suanwang up\` prints, or just
SUANWANG_DATA_DIR=DIR (the CLI reads the server URL and token from there)."
bootstrap_help "$USAGE" "$@" && exit 0
bootstrap_system git ca-certificates
bootstrap_venv "embedded"
bootstrap_web_assets
exec "$VENV/bin/suanwang" up "$@"
