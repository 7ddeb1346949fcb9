# shellcheck shell=bash
# Shared by scripts/up.sh and scripts/test.sh: system packages and the project's virtualenv.
# Usage: source scripts/bootstrap.sh; bootstrap_system PKG...; bootstrap_venv EXTRAS
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SUANWANG_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root for: $*" >&2; return 1; fi
}

# Install Debian/Ubuntu packages that are missing (skips apt entirely when all are present).
bootstrap_system() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing system packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Create the virtualenv (once) and install the project with the given extras.
bootstrap_venv() {
  local extras="$1"
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" || { bootstrap_system python3-venv && "$PYTHON" -m venv "$VENV"; }
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  if [[ "$extras" == *ml* ]] || [[ "$extras" == *dev* ]]; then
    # The CPU build of torch, pinned: any other spec pulls gigabytes of CUDA packages.
    "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  fi
  "$VENV/bin/python" -m pip install -q -e "${ROOT}[$extras]"
  export PATH="$VENV/bin:$PATH"
}

# Front-end assets (DataTables, Bootstrap, Chart.js) from the npm registry, never a CDN.
bootstrap_web_assets() {
  command -v npm >/dev/null || bootstrap_system nodejs npm
  if [ -x "$ROOT/scripts/build_web_assets.sh" ] || [ -f "$ROOT/scripts/build_web_assets.sh" ]; then
    bash "$ROOT/scripts/build_web_assets.sh"
  fi
}
