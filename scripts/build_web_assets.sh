#!/usr/bin/env bash
# The setup step of the web pages: their front-end libraries (Bootstrap, DataTables with Responsive,
# Chart.js, Swagger UI for /api/v1/docs, Cytoscape for the workflow graph, a Noto Sans SC subset)
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
cp "$NM/datatables.net-responsive/js/dataTables.responsive.min.js" "$TMP/"
cp "$NM/datatables.net-responsive-bs5/js/responsive.bootstrap5.min.js" \
   "$NM/datatables.net-responsive-bs5/css/responsive.bootstrap5.min.css" "$TMP/"
cp "$NM/swagger-ui-dist/swagger-ui-bundle.js" "$NM/swagger-ui-dist/swagger-ui.css" "$TMP/"
cp "$NM/cytoscape/dist/cytoscape.min.js" "$TMP/cytoscape.min.js"
# Only the font subsets that hold the characters the pages show in Chinese (the brand 算网): a few
# kilobytes instead of the whole 70 MB family; fonts/noto-sans-sc.css names just those files.
mkdir -p "$TMP/fonts"
BRAND_TEXT="算网" node - "$NM/@fontsource/noto-sans-sc" "$TMP/fonts" <<'JS'
const fs = require('fs'), path = require('path');
const [src, out] = process.argv.slice(2);
const wanted = [...process.env.BRAND_TEXT].map(c => c.codePointAt(0));
const covers = range => range.split(',').some(part => {
  const [lo, hi] = part.trim().replace(/^U\+/i, '').split('-').map(h => parseInt(h, 16));
  return wanted.some(cp => cp >= lo && cp <= (hi || lo));
});
let css = '/* Noto Sans SC (SIL Open Font License 1.1), subsets holding: ' + process.env.BRAND_TEXT + ' */\n';
for (const block of fs.readFileSync(path.join(src, '400.css'), 'utf8').split('@font-face').slice(1)) {
  const range = /unicode-range:\s*([^;]+);/.exec(block)[1];
  if (!covers(range)) continue;
  const file = /url\(\.\/files\/([^)]+\.woff2)\)/.exec(block)[1];
  fs.copyFileSync(path.join(src, 'files', file), path.join(out, file));
  css += `@font-face { font-family: 'Noto Sans SC'; font-style: normal; font-display: swap; font-weight: 400;\n` +
         `  src: url(./${file}) format('woff2'); unicode-range: ${range}; }\n`;
}
if (!css.includes('woff2')) { console.error('web assets: no Noto Sans SC subset holds ' + process.env.BRAND_TEXT); process.exit(1); }
fs.writeFileSync(path.join(out, 'noto-sans-sc.css'), css);
JS
mkdir -p "$TMP/licenses"
for pkg in bootstrap datatables.net datatables.net-bs5 datatables.net-responsive datatables.net-responsive-bs5 \
    chart.js swagger-ui-dist cytoscape @fontsource/noto-sans-sc; do
  for f in "$NM/$pkg"/LICENSE*; do [ -f "$f" ] && cp "$f" "$TMP/licenses/${pkg//\//_}-$(basename "$f")"; done
  node -e "const p=require('$NM/$pkg/package.json'); console.log(p.name + ' ' + p.version)" >> "$TMP/VERSIONS"
done
touch "$TMP/.installed"
# swap in the complete folder at once: a server never sees half of it
rm -rf "$VENDOR.old"; [ -d "$VENDOR" ] && mv "$VENDOR" "$VENDOR.old"
mv "$TMP" "$VENDOR"; trap - EXIT; rm -rf "$VENDOR.old"
chmod 755 "$VENDOR"
echo "web assets: installed into $VENDOR ($(paste -sd', ' "$VENDOR/VERSIONS"))"
