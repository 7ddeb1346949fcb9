# shellcheck shell=bash
# shellcheck disable=SC2034  # the SW_* variables are read by the scripts that source this
# Shared by install_worker.sh and install_server.sh: input checks, idempotent file writes
# ("created" / "updated" / "unchanged" per path), the virtualenv, systemd and nftables.
# Source it; it defines functions and SW_* variables only.

SW_DRY_RUN=0
SW_CHANGED=0            # how many things this run changed (a running service is restarted when > 0)
SW_SYSTEMD=1            # 0: --no-systemd
SW_MARKER=".suanwang-install"
SW_NFT_TABLE="suanwang"

# Identifier grammars: copies of fsm.identifiers (worker_name, tag, token), which
# tests/test_identifiers.py holds equal, with the same accepted and refused examples.
SW_NAME_RE='^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$'   # fsm.identifiers.WORKER_NAME
SW_TAG_RE='^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'       # fsm.identifiers.TAG
SW_URI_CHARS_RE='^[]A-Za-z0-9._~:/?#@!&+,=%*[-]+$'  # RFC 3986 less $ ' ( ) ; and anything a shell reads
SW_HOST_RE='^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:([0-9]{1,5}))?$'
SW_TOKEN_RE='^[A-Za-z0-9._~-]{16,256}$'          # fsm.identifiers.TOKEN

sw_say() { printf '%s\n' "$*"; }
sw_warn() { printf 'warning: %s\n' "$*" >&2; }
sw_die() { printf 'error: %s\n' "$*" >&2; exit 2; }
sw_fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------- input checks
sw_check_uri() {
  local uri=$1 rest hosts h port srv=0 n
  [[ -n $uri ]] || sw_die "a MongoDB URI is required (--mongo mongodb://HOST:27017/?replicaSet=suanwang)"
  [[ $uri =~ ^mongodb(\+srv)?:// ]] \
    || sw_die "bad MongoDB URI '$uri': it must start with mongodb:// or mongodb+srv://"
  [[ $uri == mongodb+srv://* ]] && srv=1
  [[ $uri =~ $SW_URI_CHARS_RE ]] \
    || sw_die "bad MongoDB URI: it holds a character that is not allowed (whitespace, quotes, \$, \`, \\, ;, |, <, >, parentheses, braces); percent-encode it"
  rest=${uri#*://}
  hosts=${rest%%/*}
  hosts=${hosts%%\?*}
  [[ $hosts == *@* ]] && hosts=${hosts##*@}
  [[ -n $hosts ]] || sw_die "bad MongoDB URI '$uri': no host"
  IFS=, read -r -a _sw_hosts <<< "$hosts"
  n=${#_sw_hosts[@]}
  for h in "${_sw_hosts[@]}"; do
    [[ $h =~ $SW_HOST_RE ]] || sw_die "bad MongoDB URI: bad host '$h'"
    port=${BASH_REMATCH[4]}
    if [[ -n $port ]] && (( 10#$port < 1 || 10#$port > 65535 )); then
      sw_die "bad MongoDB URI: port $port out of range"
    fi
    if (( srv )) && [[ -n $port ]]; then sw_die "bad MongoDB URI: a mongodb+srv:// URI takes no port"; fi
  done
  if (( srv && n != 1 )); then sw_die "bad MongoDB URI: a mongodb+srv:// URI names exactly one host"; fi
}

sw_check_name() {
  [[ $1 =~ $SW_NAME_RE ]] \
    || sw_die "bad worker name '$1': letters, digits and . _ : @ - only, starting with a letter or digit, at most 128"
}

sw_check_tags() {
  local t
  [[ -z $1 ]] && return 0
  IFS=, read -r -a _sw_tags <<< "$1"
  for t in "${_sw_tags[@]}"; do
    [[ $t =~ $SW_TAG_RE ]] || sw_die "bad tag '$t' in '$1': letters, digits and . _ - only, comma-separated"
  done
}

# sw_check_int VALUE MIN MAX WHAT
sw_check_int() {
  if [[ $1 =~ ^[0-9]{1,6}$ ]] && (( 10#$1 >= $2 && 10#$1 <= $3 )); then return 0; fi
  sw_die "bad $4 '$1': an integer from $2 to $3"
}

sw_check_abs_path() {
  [[ $1 == /* && $1 != *[[:space:]\"\'\$\`\\%]* ]] \
    || sw_die "bad $2 '$1': an absolute path without spaces, quotes, \$, \`, \\ or %"
}

sw_py311() { command -v "$1" >/dev/null 2>&1 && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

# Picks SW_PYTHON (3.11+: the venv's base, or with --no-venv the one that runs suanwang) and
# SW_CHECK_PY (any python3: the input checks). Where no 3.11+ is installed yet (Ubuntu 22.04),
# plans apt-get install python3.11 python3.11-venv.
sw_pick_python() {
  local candidate
  if [[ -n $SW_PYTHON ]]; then
    command -v "$SW_PYTHON" >/dev/null 2>&1 || sw_die "no python '$SW_PYTHON' (pass --python /path/to/python3.11)"
    sw_py311 "$SW_PYTHON" || sw_die "'$SW_PYTHON' is not Python 3.11+"
  else
    for candidate in python3 python3.13 python3.12 python3.11; do
      if sw_py311 "$candidate"; then SW_PYTHON=$candidate; break; fi
    done
    if [[ -z $SW_PYTHON ]]; then
      if (( SW_NO_VENV )) || (( ! SW_APT )) || ! command -v apt-get >/dev/null; then
        sw_die "no Python 3.11+ here: install one (apt-get install python3.11 python3.11-venv) or pass --python"
      fi
      SW_APT_PKGS+=(python3.11 python3.11-venv)
      SW_PYTHON=/usr/bin/python3.11
    fi
  fi
  SW_CHECK_PY=$SW_PYTHON
  if ! command -v "$SW_CHECK_PY" >/dev/null 2>&1; then
    SW_CHECK_PY=$(command -v python3) || sw_die "no python3 here (apt-get install python3)"
  else
    SW_PYTHON=$("$SW_PYTHON" -c 'import sys; print(sys.executable)')  # a venv's own python, not a shim
  fi
  if (( ! SW_NO_VENV )) && (( ${#SW_APT_PKGS[@]} == 0 )) && ! "$SW_PYTHON" -c 'import ensurepip' 2>/dev/null; then
    if (( ! SW_APT )) || ! command -v apt-get >/dev/null; then
      sw_die "$SW_PYTHON cannot make a venv (no ensurepip): apt-get install python3-venv, or pass --no-venv"
    fi
    SW_APT_PKGS+=("$("$SW_PYTHON" -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])')")
  fi
}

# Debian/Ubuntu packages the install needs (python3.11, its venv module, git for a git source).
sw_apt_install() {
  (( ${#SW_APT_PKGS[@]} )) || return 0
  SW_CHANGED=$((SW_CHANGED + 1))
  if (( SW_DRY_RUN )); then sw_say "would run: apt-get install -y ${SW_APT_PKGS[*]}"; return 0; fi
  sw_say "installing system packages: ${SW_APT_PKGS[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq || sw_fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${SW_APT_PKGS[@]}" >/dev/null \
    || sw_fail "apt-get install ${SW_APT_PKGS[*]} failed"
  sw_py311 "$SW_PYTHON" || sw_fail "$SW_PYTHON is still not Python 3.11+ after apt-get install"
  SW_PYTHON=$("$SW_PYTHON" -c 'import sys; print(sys.executable)')
}

# sw_check_networks PYTHON "CIDR,CIDR ..." -> canonical networks on stdout, one a line
sw_check_networks() {
  "$1" - "$2" <<'PY' || exit 2
import ipaddress, sys
items = [x for x in sys.argv[1].replace(",", " ").split() if x]
if not items:
    print("error: --firewall-allow needs at least one network", file=sys.stderr); sys.exit(2)
for item in items:
    try:
        print(ipaddress.ip_network(item, strict=False))
    except ValueError as exc:
        print(f"error: bad network '{item}' in --firewall-allow: {exc}", file=sys.stderr); sys.exit(2)
PY
}

# sw_check_bind_ip PYTHON "IP[,IP]"
sw_check_bind_ip() {
  "$1" - "$2" <<'PY' || exit 2
import ipaddress, sys
items = sys.argv[1].split(",")
for i, item in enumerate(items):
    try:
        addr = ipaddress.ip_address(item)
    except ValueError:
        print(f"error: bad --bind-ip '{sys.argv[1]}': '{item}' is not an IP address", file=sys.stderr); sys.exit(2)
    if i == 0 and addr.is_unspecified:
        print(f"error: --bind-ip {item} would advertise the replica set member as 127.0.0.1, which other "
              "machines cannot reach: give this machine's LAN address first (e.g. 10.0.0.5,127.0.0.1)",
              file=sys.stderr); sys.exit(2)
PY
}

# ---------------------------------------------------------------------------- files
sw_mask() {  # hide passwords and tokens in what a dry run prints
  sed -E -e "s#(://[^:/@]*):[^@/]*@#\\1:***@#" -e "s#^(SUANWANG_ADMIN_TOKEN=).*#\\1'***'#" \
    -e 's#^( *"(admin|suanwang-server|suanwang-worker)": )"[^"]*"#\1"***"#'
}

# sw_put PATH MODE CONTENT: write CONTENT to PATH unless it is already there, and say which.
sw_put() {
  local path=$1 mode=$2 content=$3 old="" exists=0
  if [[ -f $path ]]; then
    exists=1
    old=$(cat "$path"; printf x)
    old=${old%x}
    if [[ $old == "$content" && $(stat -c %a "$path") == "$mode" ]]; then
      sw_say "unchanged $path"
      return 0
    fi
  fi
  SW_CHANGED=$((SW_CHANGED + 1))
  if (( SW_DRY_RUN )); then
    if (( exists )); then
      sw_say "would update $path (mode $mode):"
      diff -u --label "$path" --label "$path (new)" <(printf '%s' "$old") <(printf '%s' "$content") \
        | sw_mask | sed 's/^/    /' || true
    else
      sw_say "would create $path (mode $mode):"
      printf '%s' "$content" | sw_mask | sed 's/^/    /'
    fi
    return 0
  fi
  mkdir -p "$(dirname "$path")"
  local tmp="$path.tmp.$$"
  ( umask 077; printf '%s' "$content" > "$tmp" ) || sw_fail "cannot write $path"
  if ! { chmod "$mode" "$tmp" && mv -f "$tmp" "$path"; }; then rm -f "$tmp"; sw_fail "cannot write $path"; fi
  if (( exists )); then sw_say "updated $path"; else sw_say "created $path"; fi
}

# sw_dir PATH MODE [OWNER]
sw_dir() {
  local path=$1 mode=$2 owner=${3:-}
  if [[ -d $path ]]; then
    if [[ -n $owner && $(stat -c %U "$path") != "$owner" ]]; then
      if (( SW_DRY_RUN )); then sw_say "would chown $owner $path"; else chown -R "$owner:" "$path"; sw_say "chowned $owner $path"; fi
      SW_CHANGED=$((SW_CHANGED + 1))
    else
      sw_say "unchanged $path/"
    fi
    return 0
  fi
  SW_CHANGED=$((SW_CHANGED + 1))
  if (( SW_DRY_RUN )); then sw_say "would create $path/"; return 0; fi
  if ! { mkdir -p "$path" && chmod "$mode" "$path"; }; then sw_fail "cannot create $path"; fi
  [[ -n $owner ]] && chown "$owner:" "$path"
  sw_say "created $path/"
}

# sw_remove PATH...: files or (marked) directories
sw_remove() {
  local path
  for path in "$@"; do
    if [[ ! -e $path && ! -L $path ]]; then
      sw_say "absent $path"
    elif (( SW_DRY_RUN )); then
      sw_say "would remove $path"
    else
      rm -rf -- "$path" && sw_say "removed $path"
    fi
  done
}

sw_rmdir_if_empty() {
  local path
  for path in "$@"; do
    [[ -d $path ]] || continue
    if [[ -z $(ls -A "$path") ]]; then
      if (( SW_DRY_RUN )); then sw_say "would remove $path/ (empty)"; else rmdir "$path" && sw_say "removed $path/"; fi
    fi
  done
}

# sw_env_value FILE KEY: a value this installer wrote (single-quoted) to an env file
sw_env_value() {
  [[ -f $1 ]] || return 0
  sed -n -E "s/^$2='([^']*)'\$/\\1/p" "$1" | tail -n 1
}

# ---------------------------------------------------------------------------- user
sw_ensure_user() {
  local user=$1 home=$2 create=$3
  id -u "$user" >/dev/null 2>&1 && { sw_say "unchanged user $user"; return 0; }
  (( create )) || sw_die "user '$user' does not exist (drop --no-create-user, or pass --user EXISTING)"
  SW_CHANGED=$((SW_CHANGED + 1))
  if (( SW_DRY_RUN )); then sw_say "would create system user $user (home $home)"; return 0; fi
  useradd --system --home-dir "$home" --no-create-home --shell /usr/sbin/nologin --user-group "$user" \
    || sw_fail "cannot create user $user"
  sw_say "created system user $user"
}

# ---------------------------------------------------------------------------- the package
# sw_source_kind SOURCE -> dir | wheel | git
sw_source_kind() {
  case $1 in
    git+*|*.git|*.git@*) echo git ;;
    *.whl) [[ -f $1 ]] || sw_die "no wheel file '$1'"; echo wheel ;;
    *)
      [[ -d $1 ]] || sw_die "bad --source '$1': a directory, a .whl file or a git URL (git+https://...)"
      [[ -f $1/setup.cfg || -f $1/pyproject.toml || -f $1/setup.py ]] \
        || sw_die "--source '$1' holds no Python project (no setup.cfg, pyproject.toml or setup.py)"
      echo dir ;;
  esac
}

# sw_pip_args KIND SOURCE EXTRAS EDITABLE -> the pip requirement, one argument a line
sw_pip_args() {
  local kind=$1 src=$2 extras=$3 editable=$4 ex=""
  [[ -n $extras ]] && ex="[$extras]"
  case $kind in
    dir) if (( editable )); then printf '%s\n' -e "$src$ex"; else printf '%s\n' "$src$ex"; fi ;;
    wheel) printf '%s\n' "$src$ex" ;;
    git) [[ $src == git+* ]] || src="git+$src"; printf '%s\n' "suanwang$ex @ $src" ;;
  esac
}

# What identifies an install: a second run with the same identity leaves the venv alone.
sw_source_identity() {
  local kind=$1 src=$2
  case $kind in
    dir) printf 'source=%s\n' "$src"
         if command -v git >/dev/null && git -C "$src" rev-parse HEAD >/dev/null 2>&1; then
           printf 'commit=%s\n' "$(git -C "$src" rev-parse HEAD)"
         fi ;;
    wheel) printf 'source=%s\nsha256=%s\n' "$src" "$(sha256sum "$src" | cut -d' ' -f1)" ;;
    git) printf 'source=%s\n' "$src" ;;
  esac
}

# sw_venv VENV PYTHON KIND SOURCE EXTRAS EDITABLE SYSTEM_SITE NO_DEPS REINSTALL
sw_venv() {
  local venv=$1 python=$2 kind=$3 src=$4 extras=$5 editable=$6 system_site=$7 no_deps=$8 reinstall=$9
  local identity want have="" args=() pipflags=() what=created
  if (( editable )); then identity="source=$src"; else identity=$(sw_source_identity "$kind" "$src"); fi
  want=$(printf 'python=%s\nextras=%s\neditable=%s\nsystem_site_packages=%s\nno_deps=%s\n%s\n' \
    "$python" "$extras" "$editable" "$system_site" "$no_deps" "$identity")
  if [[ -f $venv/$SW_MARKER ]]; then
    have=$(cat "$venv/$SW_MARKER")
    what=updated
  elif [[ -e $venv ]]; then
    sw_die "$venv exists but was not made by this installer; remove it or pass another --prefix"
  fi
  if (( ! reinstall )) && [[ $have == "$want" ]] && "$venv/bin/python" -c 'import suanwang' 2>/dev/null; then
    sw_say "unchanged $venv (suanwang from $src)"
    return 0
  fi
  SW_CHANGED=$((SW_CHANGED + 1))
  mapfile -t args < <(sw_pip_args "$kind" "$src" "$extras" "$editable")
  (( no_deps )) && pipflags+=(--no-deps)
  local venvflags=()
  (( system_site )) && venvflags+=(--system-site-packages)
  if (( SW_DRY_RUN )); then
    sw_say "would ${what%d} virtualenv $venv: $python -m venv ${venvflags[*]:+${venvflags[*]} }$venv; pip install ${pipflags[*]:+${pipflags[*]} }${args[*]}"
    return 0
  fi
  if [[ -n $have && $have != *"system_site_packages=$system_site"* ]]; then
    "$python" -m venv --clear "${venvflags[@]}" "$venv" || sw_fail "cannot re-create the virtualenv $venv"
  elif [[ ! -x $venv/bin/python ]]; then
    "$python" -m venv "${venvflags[@]}" "$venv" \
      || sw_fail "cannot create a virtualenv with $python (on Debian/Ubuntu: apt-get install python3-venv)"
  fi
  sw_say "installing suanwang into $venv (pip install ${pipflags[*]:+${pipflags[*]} }${args[*]}) ..."
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "${pipflags[@]}" "${args[@]}" \
    || sw_fail "pip install into $venv failed"
  "$venv/bin/python" -c 'import suanwang' || sw_fail "suanwang is not importable from $venv after pip install"
  printf '%s' "$want" > "$venv/$SW_MARKER"
  sw_say "$what $venv (suanwang from $src)"
}

# ---------------------------------------------------------------------------- nftables
# sw_nft_rules ROLE PORTS NETWORK... -> the rule set file's text (PORTS: comma-separated, MongoDB's first)
sw_nft_rules() {
  local role=$1 port=$2 net v4="" v6="" p jumps=""
  shift 2
  IFS=, read -r -a _sw_ports <<< "$port"
  for p in "${_sw_ports[@]}"; do jumps+=$'\n\t\t'"tcp dport $p jump mongo"; done
  for net in "$@"; do if [[ $net == *:* ]]; then v6+="${v6:+, }$net"; else v4+="${v4:+, }$net"; fi; done
  [[ -n $v4 ]] && v4=$'\n\t\telements = { '"$v4 }"
  [[ -n $v6 ]] && v6=$'\n\t\telements = { '"$v6 }"
  cat <<EOF
#!/usr/sbin/nft -f
# Managed by suanwang install_${role}.sh: only these networks reach tcp port(s) $port (MongoDB first;
# the chain keeps its name "mongo" from when it guarded MongoDB alone).
# Load: nft -f THIS_FILE (replaces the table atomically). Remove: nft delete table inet $SW_NFT_TABLE
table inet $SW_NFT_TABLE
delete table inet $SW_NFT_TABLE

table inet $SW_NFT_TABLE {
	set mongo_allow_v4 {
		type ipv4_addr
		flags interval$v4
	}

	set mongo_allow_v6 {
		type ipv6_addr
		flags interval$v6
	}

	chain input {
		type filter hook input priority filter - 10; policy accept;$jumps
	}

	chain mongo {
		iifname "lo" accept
		ip saddr @mongo_allow_v4 accept
		ip6 saddr @mongo_allow_v6 accept
		counter drop
	}
}
EOF
}

sw_nft_loaded() { nft list table inet "$SW_NFT_TABLE" >/dev/null 2>&1; }

# sw_nft_apply FILE CHANGED: load the rule set now (when it changed or is not loaded)
sw_nft_apply() {
  local file=$1 changed=$2
  command -v nft >/dev/null || sw_fail "--apply-firewall needs nft: apt-get install nftables"
  if (( ! changed )) && sw_nft_loaded; then sw_say "unchanged firewall (table inet $SW_NFT_TABLE loaded)"; return 0; fi
  SW_CHANGED=$((SW_CHANGED + 1))
  if (( SW_DRY_RUN )); then sw_say "would run: nft -f $file"; return 0; fi
  if [[ -f $file ]]; then
    nft -f "$file" || sw_fail "nft -f $file failed"
  fi
  sw_say "applied firewall $file (table inet $SW_NFT_TABLE)"
}

# ---------------------------------------------------------------------------- systemd
# (SUANWANG_TEST_SYSTEMD_RUN_DIR: for the installer's own tests, with a stand-in systemctl on PATH)
sw_systemd_running() {
  (( SW_SYSTEMD )) && [[ -d ${SUANWANG_TEST_SYSTEMD_RUN_DIR:-/run/systemd/system} ]] && command -v systemctl >/dev/null
}

sw_run() {  # a command that changes the system: printed in a dry run, else run
  if (( SW_DRY_RUN )); then sw_say "would run: $*"; else sw_say "running: $*"; "$@"; fi
}

# sw_systemd_up RESTART UNIT...: enable the units and (re)start them
sw_systemd_up() {
  local restart=$1 unit
  shift
  (( restart )) && { sw_run systemctl daemon-reload || sw_fail "systemctl daemon-reload failed"; }
  for unit in "$@"; do
    if systemctl is-enabled --quiet "$unit" 2>/dev/null; then sw_say "unchanged $unit enabled"
    else sw_run systemctl enable "$unit" || sw_fail "systemctl enable $unit failed"; fi
    if (( restart )); then
      sw_run systemctl restart "$unit" || sw_fail "systemctl restart $unit failed (journalctl -u $unit)"
    elif systemctl is-active --quiet "$unit"; then
      sw_say "unchanged $unit running"
    else
      sw_run systemctl start "$unit" || sw_fail "systemctl start $unit failed (journalctl -u $unit)"
    fi
  done
}

sw_systemd_down() {
  local unit
  for unit in "$@"; do
    if systemctl cat "$unit" >/dev/null 2>&1; then
      sw_run systemctl disable --now "$unit" || sw_warn "systemctl disable --now $unit failed"
    fi
  done
}

# ---------------------------------------------------------------------------- options both scripts take
sw_defaults() {
  SW_SOURCE=""; SW_EDITABLE=0; SW_REINSTALL=0; SW_NO_DEPS=0; SW_SYSTEM_SITE=0; SW_EXTRAS=""
  SW_PREFIX=/opt/suanwang; SW_ETC_DIR=/etc/suanwang; SW_UNIT_DIR=/etc/systemd/system
  SW_STATE_DIR=/var/lib/suanwang; SW_PYTHON=""; SW_NO_VENV=0; SW_APT=1; SW_APT_PKGS=()
  SW_USER=suanwang; SW_CREATE_USER=1; SW_START=1
  SW_FW_ALLOW=""; SW_FW_PORT=""; SW_FW_APPLY=0; SW_UNINSTALL=0; SW_PURGE=0
}

SW_COMMON_USAGE='
Where the package comes from:
  --source SRC           a directory (a checkout), a .whl file or a git URL (git+https://HOST/REPO.git[@REF]);
                         default: the checkout this script is in
  --editable             pip install -e (a directory source): the venv follows the checkout
  --no-deps              pip install --no-deps (the dependencies are already there, e.g. with --system-site-packages)
  --system-site-packages make the venv with --system-site-packages
  --reinstall            pip install again even if the same source is installed
  --python PY            the Python 3.11+ that makes the venv (default: python3 if 3.11+, else python3.11,
                         installed with apt-get where missing, as are its venv module and git for a git URL)
  --no-apt               never run apt-get (fail instead)
  --no-venv              make no venv: run suanwang with --python, which must import it already
Where things go (all overridable, e.g. into a temporary directory):
  --prefix DIR           the venv goes to DIR/venv (default /opt/suanwang)
  --etc-dir DIR          env files and the firewall rule set (default /etc/suanwang)
  --unit-dir DIR         systemd units (default /etc/systemd/system)
  --state-dir DIR        the service user'"'"'s home: caches, the database (default /var/lib/suanwang)
  --user USER            the service runs as USER (default suanwang; created as a system user if missing)
  --no-create-user       never create the user (it must exist)
  --no-systemd           write the units but never run systemctl (also automatic where systemd is not running)
  --no-start             enable the units but do not start them
Firewall (nftables, for the MongoDB host):
  --firewall-allow NETS  comma-separated networks/addresses that may reach the MongoDB port (repeatable);
                         writes ETC_DIR/firewall.nft and the unit suanwang-firewall.service
  --firewall-port PORT   the MongoDB port to guard (default: the MongoDB port)
  --firewall-open-web    (install_server.sh) leave the web/API port open to everyone; by default the
                         rule set admits only the listed networks to it too (see docs/OPERATIONS.md: TLS)
  --apply-firewall       load the rule set now (nft -f) and, with systemd, at every boot
Modes:
  --dry-run              print the plan (what would be created/updated/unchanged); write nothing
  --uninstall            stop and remove what this script installed (data is kept)
  --purge                with --uninstall: remove STATE_DIR too (the database!)
  -h, --help             this help
Every file is reported as created, updated or unchanged: a second run with the same options changes nothing.
Exit status: 0 done, 1 a step failed, 2 bad input (nothing written).'

# sw_common_opt ARGS...: takes one option (and its value) when it is a common one; sets SW_NARGS
# to the words it used (0: not a common option).
sw_common_opt() {
  local opt=$1
  SW_NARGS=1
  case $opt in
    --source|--prefix|--etc-dir|--unit-dir|--state-dir|--python|--user|--firewall-allow|--firewall-port)
      [[ $# -ge 2 ]] || sw_die "$opt needs a value"
      SW_NARGS=2
      case $opt in
        --source) SW_SOURCE=$2 ;;
        --prefix) SW_PREFIX=$2 ;;
        --etc-dir) SW_ETC_DIR=$2 ;;
        --unit-dir) SW_UNIT_DIR=$2 ;;
        --state-dir) SW_STATE_DIR=$2 ;;
        --python) SW_PYTHON=$2 ;;
        --user) SW_USER=$2 ;;
        --firewall-allow) SW_FW_ALLOW="${SW_FW_ALLOW:+$SW_FW_ALLOW,}$2" ;;
        --firewall-port) SW_FW_PORT=$2 ;;
      esac ;;
    --editable) SW_EDITABLE=1 ;;
    --reinstall) SW_REINSTALL=1 ;;
    --no-deps) SW_NO_DEPS=1 ;;
    --no-apt) SW_APT=0 ;;
    --system-site-packages) SW_SYSTEM_SITE=1 ;;
    --no-venv) SW_NO_VENV=1 ;;
    --no-create-user) SW_CREATE_USER=0 ;;
    --no-systemd) SW_SYSTEMD=0 ;;
    --no-start) SW_START=0 ;;
    --apply-firewall) SW_FW_APPLY=1 ;;
    --dry-run) SW_DRY_RUN=1 ;;
    --uninstall) SW_UNINSTALL=1 ;;
    --purge) SW_PURGE=1 ;;
    *) SW_NARGS=0 ;;
  esac
}

# Checks of the common options; sets SW_VENV, SW_BIN (the suanwang command line prefix) and
# SW_FW_NETS (canonical networks). Call after parsing, before writing anything.
sw_check_common() {
  local script_dir=$1 p
  sw_pick_python
  for p in SW_PREFIX SW_ETC_DIR SW_UNIT_DIR SW_STATE_DIR SW_PYTHON; do
    sw_check_abs_path "${!p}" "$(tr '[:upper:]_' '[:lower:]-' <<< "--${p#SW_}")"
  done
  [[ $SW_USER =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || sw_die "bad --user '$SW_USER'"
  (( SW_PURGE && ! SW_UNINSTALL )) && sw_die "--purge goes with --uninstall"
  SW_VENV=$SW_PREFIX/venv
  if (( SW_NO_VENV )); then
    SW_BIN="$SW_PYTHON -m suanwang"
  else
    SW_BIN="$SW_VENV/bin/suanwang"
  fi
  SW_FW_NETS=()
  if [[ -n $SW_FW_ALLOW ]]; then
    local nets
    nets=$(sw_check_networks "$SW_CHECK_PY" "$SW_FW_ALLOW") || exit 2
    mapfile -t SW_FW_NETS <<< "$nets"
  elif (( SW_FW_APPLY )); then
    sw_die "--apply-firewall needs --firewall-allow NETS"
  fi
  (( SW_UNINSTALL )) && return 0
  if (( SW_NO_VENV )); then
    "$SW_PYTHON" -c 'import suanwang' 2>/dev/null \
      || sw_die "--no-venv: $SW_PYTHON cannot import suanwang (drop --no-venv to install it into a venv)"
  else
    if [[ -z $SW_SOURCE ]]; then
      SW_SOURCE=$(cd "$script_dir/.." && pwd)
      [[ -f $SW_SOURCE/setup.cfg ]] || sw_die "no --source given and $SW_SOURCE is not a suanwang checkout"
    fi
    case $SW_SOURCE in git+*|*.git|*.git@*) ;; *) [[ -e $SW_SOURCE ]] && SW_SOURCE=$(realpath "$SW_SOURCE") ;; esac
    SW_SOURCE_KIND=$(sw_source_kind "$SW_SOURCE") || exit 2
    if (( SW_EDITABLE )) && [[ $SW_SOURCE_KIND != dir ]]; then sw_die "--editable needs a directory --source"; fi
    if [[ $SW_SOURCE_KIND == git ]] && ! command -v git >/dev/null; then
      if (( ! SW_APT )) || ! command -v apt-get >/dev/null; then sw_die "a git --source needs git: apt-get install git"; fi
      SW_APT_PKGS+=(git)
    fi
    if [[ -e $SW_VENV && ! -f $SW_VENV/$SW_MARKER ]]; then
      sw_die "$SW_VENV exists but was not made by this installer; remove it or pass another --prefix"
    fi
  fi
  if (( EUID != 0 )) && (( ! SW_DRY_RUN )) && { sw_systemd_running || (( SW_FW_APPLY )); }; then
    sw_die "run as root (systemctl, useradd and nft need it), or pass --dry-run"
  fi
}

# The firewall's files: written when --firewall-allow is given, applied with --apply-firewall.
# sw_firewall ROLE PORT
sw_firewall() {
  local role=$1 port=$2 before=$SW_CHANGED nft_bin
  SW_FW_FILE=$SW_ETC_DIR/firewall.nft
  SW_FW_UNIT=suanwang-firewall.service
  (( ${#SW_FW_NETS[@]} )) || return 0
  sw_put "$SW_FW_FILE" 644 "$(sw_nft_rules "$role" "$port" "${SW_FW_NETS[@]}")
"
  nft_bin=$(command -v nft || echo /usr/sbin/nft)
  sw_put "$SW_UNIT_DIR/$SW_FW_UNIT" 644 "# Managed by suanwang install_${role}.sh; re-run it to change this file.
[Unit]
Description=Suanwang firewall: only the listed networks reach tcp $port (MongoDB, and the web/API port unless opened)
Documentation=file://$SW_FW_FILE
DefaultDependencies=no
Wants=network-pre.target
After=nftables.service
Before=network-pre.target suanwang-mongo.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=$nft_bin -f $SW_FW_FILE
ExecStop=$nft_bin delete table inet $SW_NFT_TABLE

[Install]
WantedBy=multi-user.target
"
  SW_FW_CHANGED=$((SW_CHANGED - before))
  if (( ! SW_FW_APPLY )); then
    sw_say "firewall rule set written, not loaded: load it with  nft -f $SW_FW_FILE  (or re-run with --apply-firewall)"
  elif ! sw_systemd_running; then
    sw_nft_apply "$SW_FW_FILE" "$SW_FW_CHANGED"
  fi
}

# Removes the firewall if this role installed it.
sw_firewall_remove() {
  local role=$1
  SW_FW_FILE=$SW_ETC_DIR/firewall.nft
  SW_FW_UNIT=suanwang-firewall.service
  [[ -f $SW_FW_FILE ]] || return 0
  if ! grep -q "install_${role}.sh" "$SW_FW_FILE"; then
    sw_say "kept $SW_FW_FILE (installed by the other script)"
    return 0
  fi
  sw_systemd_running && sw_systemd_down "$SW_FW_UNIT"
  if command -v nft >/dev/null && sw_nft_loaded; then
    sw_run nft delete table inet "$SW_NFT_TABLE" || sw_warn "cannot delete table inet $SW_NFT_TABLE"
  fi
  sw_remove "$SW_FW_FILE" "$SW_UNIT_DIR/$SW_FW_UNIT"
}

# sw_venv_remove OTHER_ENV_FILE: the venv goes unless the other role still uses it
sw_venv_remove() {
  [[ -f $SW_VENV/$SW_MARKER ]] || { [[ -e $SW_VENV ]] && sw_say "kept $SW_VENV (not made by this installer)"; return 0; }
  if [[ -f $1 ]]; then sw_say "kept $SW_VENV (still used: $1)"; return 0; fi
  sw_remove "$SW_VENV"
}

sw_summary() {
  if (( SW_DRY_RUN )); then
    sw_say "dry run: $SW_CHANGED change(s) planned; nothing was written"
  elif (( SW_CHANGED )); then
    sw_say "done: $SW_CHANGED change(s)"
  else
    sw_say "done: nothing to change"
  fi
}
