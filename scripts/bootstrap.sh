# shellcheck shell=bash
# Shared by scripts/up.sh and scripts/test.sh: system packages and the project's virtualenv.
# Usage: source scripts/bootstrap.sh; bootstrap_help "$@" && exit 0; bootstrap_system PKG...; bootstrap_venv EXTRAS
# Installs are quiet: one progress line per step; a failing step prints the tail of its log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SUANWANG_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
LOG_DIR="${SUANWANG_INSTALL_LOG_DIR:-$ROOT/.suanwang-install}"

step() { printf '==> %s\n' "$*"; }

# bootstrap_help USAGE ARGS...: print USAGE and succeed when ARGS hold -h or --help (nothing installed)
bootstrap_help() {
  local usage=$1 arg
  shift
  for arg in "$@"; do
    case $arg in -h|--help) printf '%s\n' "$usage"; return 0 ;; --) break ;; esac
  done
  return 1
}

# quietly NAME CMD...: run CMD with its output in a log; on failure show the log's tail
quietly() {
  local name=$1 log
  shift
  mkdir -p "$LOG_DIR"
  log="$LOG_DIR/$name.log"
  if ! "$@" >"$log" 2>&1; then
    echo "failed: $* (last lines of $log):" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root for: $*" >&2; return 1; fi
}

# Install Debian/Ubuntu packages that are missing (skips apt entirely when all are present).
bootstrap_system() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "installing system packages: ${missing[*]}"
  quietly apt-update as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  quietly apt-install as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

# Create the virtualenv (once) and install the project with the given extras.
bootstrap_venv() {
  local extras="$1" pip
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
  if [ ! -x "$VENV/bin/python" ]; then
    step "creating the virtualenv $VENV"
    "$PYTHON" -m venv "$VENV" || { bootstrap_system python3-venv && "$PYTHON" -m venv "$VENV"; }
  fi
  pip=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)
  quietly pip-upgrade "${pip[@]}" install -q --upgrade pip
  if [[ "$extras" == *ml* ]] || [[ "$extras" == *dev* ]]; then
    # The CPU build of torch, pinned: any other spec pulls gigabytes of CUDA packages.
    step "installing torch (CPU build; the first time takes a few minutes)"
    quietly pip-torch "${pip[@]}" install -q "torch==2.13.0"
  fi
  step "installing suanwang[$extras] into $VENV (log: $LOG_DIR/pip.log)"
  quietly pip "${pip[@]}" install -q -e "${ROOT}[$extras]"
  export PATH="$VENV/bin:$PATH"
}

# Front-end assets (DataTables, Bootstrap, Chart.js, fonts) from the npm registry, never a CDN.
bootstrap_web_assets() {
  command -v npm >/dev/null || bootstrap_system nodejs npm
  step "web assets (npm)"
  bash "$ROOT/scripts/build_web_assets.sh"
}
