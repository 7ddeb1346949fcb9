#!/usr/bin/env bash
# The setup step of the web pages: their front-end libraries (Bootstrap, DataTables, Chart.js)
# from the npm registry, at the versions pinned in web/package.json and web/package-lock.json,
# copied into web/static/vendor/ (git-ignored). Never a CDN, never files kept in the repository.
# The server starts without them; its pages then say to run this script.
# Usage: bash scripts/build_web_assets.sh [--force]
set -euo pipefail
WEB="$(cd "$(dirname "$0")/../web" && pwd)"
VENDOR="$WEB/static/vendor"
STAMP="$VENDOR/.installed"
if [ "${1:-}" != "--force" ] && [ -f "$STAMP" ] && [ "$STAMP" -nt "$WEB/package.json" ] \
    && [ "$STAMP" -nt "$WEB/package-lock.json" ]; then
  echo "web assets: up to date in $VENDOR"; exit 0
fi
command -v npm >/dev/null || { echo "web assets: npm is missing (apt-get install -y nodejs npm)" >&2; exit 1; }
# npm ci installs exactly what the lock file names (checked against its integrity hashes)
( cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error >/dev/null )
NM="$WEB/node_modules"
mkdir -p "$WEB/static"  # a fresh clone has no static/: its only content is git-ignored
TMP="$(mktemp -d "$WEB/static/.vendor.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
cp "$NM/bootstrap/dist/css/bootstrap.min.css" "$NM/bootstrap/dist/js/bootstrap.bundle.min.js" "$TMP/"
cp "$NM/datatables.net/js/dataTables.min.js" "$TMP/"
cp "$NM/datatables.net-bs5/js/dataTables.bootstrap5.min.js" "$NM/datatables.net-bs5/css/dataTables.bootstrap5.min.css" "$TMP/"
cp "$NM/chart.js/dist/chart.umd.min.js" "$TMP/chart.umd.js"
mkdir -p "$TMP/licenses"
for pkg in bootstrap datatables.net datatables.net-bs5 chart.js; do
  for f in "$NM/$pkg"/LICENSE*; do [ -f "$f" ] && cp "$f" "$TMP/licenses/$pkg-$(basename "$f")"; done
  node -e "const p=require('$NM/$pkg/package.json'); console.log(p.name + ' ' + p.version)" >> "$TMP/VERSIONS"
done
touch "$TMP/.installed"
# swap in the complete folder at once: a server never sees half of it
rm -rf "$VENDOR.old"; [ -d "$VENDOR" ] && mv "$VENDOR" "$VENDOR.old"
mv "$TMP" "$VENDOR"; trap - EXIT; rm -rf "$VENDOR.old"
chmod 755 "$VENDOR"
echo "web assets: installed into $VENDOR ($(paste -sd', ' "$VENDOR/VERSIONS"))"
