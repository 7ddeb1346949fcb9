#!/usr/bin/env bash
# The web pages' front-end libraries (Bootstrap, DataTables, Chart.js) from the npm registry,
# copied into web/static/vendor/ (git-ignored). Never a CDN, never files kept in the repository.
set -euo pipefail
WEB="$(cd "$(dirname "$0")/../web" && pwd)"
VENDOR="$WEB/static/vendor"
if [ -f "$VENDOR/.installed" ] && [ "$VENDOR/.installed" -nt "$WEB/package.json" ]; then
  echo "web assets: up to date"; exit 0
fi
command -v npm >/dev/null || { echo "npm is missing: apt-get install -y nodejs npm" >&2; exit 1; }
( cd "$WEB" && npm install --no-audit --no-fund --loglevel=error >/dev/null )
NM="$WEB/node_modules"
rm -rf "$VENDOR"; mkdir -p "$VENDOR"
cp "$NM/bootstrap/dist/css/bootstrap.min.css" "$NM/bootstrap/dist/js/bootstrap.bundle.min.js" "$VENDOR/"
cp "$NM/datatables.net/js/dataTables.min.js" "$VENDOR/"
cp "$NM/datatables.net-bs5/js/dataTables.bootstrap5.min.js" "$NM/datatables.net-bs5/css/dataTables.bootstrap5.min.css" "$VENDOR/"
cp "$NM/chart.js/dist/chart.umd.min.js" "$VENDOR/chart.umd.js"
touch "$VENDOR/.installed"
echo "web assets: installed into $VENDOR"
