#!/usr/bin/env bash
# Turn this machine (Debian 12 / Ubuntu 22.04+) into the Suanwang control center: the embedded
# MongoDB (suanwang-mongo.service: `suanwang mongo`, a single-node replica set on --bind-ip) and
# the server (suanwang-server.service: `suanwang server`, HTTP API and web pages), with an
# optional nftables rule set that admits only the listed networks to the MongoDB port.
# Idempotent; --dry-run shows the plan; --uninstall undoes it (the database is kept).
#
#   sudo scripts/install_server.sh --bind-ip 192.168.1.10 --firewall-allow 192.168.1.0/24,203.0.113.7 --apply-firewall
# The rule set guards the MongoDB port and, unless --firewall-open-web, the web/API port too.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib_install.sh
. "$SCRIPT_DIR/lib_install.sh"

usage() {
  cat <<USAGE
Usage: install_server.sh [--bind-ip IP[,IP]] [--mongo-port P] [--http-host H] [--http-port P] [options]

The database (embedded mongod, data in STATE_DIR/db):
  --bind-ip IP[,IP]      addresses mongod listens on (default 127.0.0.1); the first is the replica set
                         member's address, which workers on other machines connect to: give the LAN address
  --mongo-port P         default 27017
  --mongo URI            use this existing MongoDB instead: no suanwang-mongo.service
The server:
  --http-host H          HTTP address (default 127.0.0.1; 0.0.0.0 for every interface)
  --http-port P          default 8080
  --admin-token T        a token that works for user admin (default: kept from server.env, else generated)
  --stop-timeout S       seconds systemd waits after SIGTERM (default 60 server, 120 mongod)
A re-run keeps the --bind-ip, --mongo-port, --mongo, --http-host, --http-port and admin token it is
not given from what it wrote before.
$SW_COMMON_USAGE
USAGE
}

sw_defaults
BIND_IP=127.0.0.1; MONGO_PORT=27017; MONGO=""; HTTP_HOST=127.0.0.1; HTTP_PORT=8080; TOKEN=""; STOP_TIMEOUT=60
WEB_FIREWALL=1  # the web/API port is guarded like MongoDB's unless --firewall-open-web
declare -A GIVEN=()
while [[ $# -gt 0 ]]; do
  if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi
  case $1 in
    -h|--help) usage; exit 0 ;;
    --firewall-open-web) WEB_FIREWALL=0; shift ;;
    --bind-ip|--mongo-port|--mongo|--http-host|--http-port|--admin-token|--stop-timeout)
      [[ $# -ge 2 ]] || sw_die "$1 needs a value"
      GIVEN[$1]=1
      case $1 in
        --bind-ip) BIND_IP=$2 ;; --mongo-port) MONGO_PORT=$2 ;; --mongo) MONGO=$2 ;;
        --http-host) HTTP_HOST=$2 ;; --http-port) HTTP_PORT=$2 ;; --admin-token) TOKEN=$2 ;;
        --stop-timeout) STOP_TIMEOUT=$2 ;;
      esac
      shift 2 ;;
    *)
      sw_common_opt "$@"
      (( SW_NARGS )) || { usage >&2; sw_die "unknown option '$1'"; }
      shift "$SW_NARGS" ;;
  esac
done

# A re-run (an upgrade: --reinstall) keeps the settings it is not given from what it wrote before.
old_env=$SW_ETC_DIR/server.env
old_mongo_unit=$SW_UNIT_DIR/suanwang-mongo.service
if (( ! SW_UNINSTALL )) && [[ -f $old_env ]]; then
  [[ -n ${GIVEN[--http-host]:-} ]] || HTTP_HOST=$(sw_env_value "$old_env" SUANWANG_HOST)
  [[ -n ${GIVEN[--http-port]:-} ]] || HTTP_PORT=$(sw_env_value "$old_env" SUANWANG_PORT)
  if [[ -f $old_mongo_unit ]]; then
    [[ -n ${GIVEN[--bind-ip]:-} ]] || BIND_IP=$(sed -n -E 's/^ExecStart=.* --bind-ip ([^ ]+).*/\1/p' "$old_mongo_unit")
    [[ -n ${GIVEN[--mongo-port]:-} ]] || MONGO_PORT=$(sed -n -E 's/^ExecStart=.* --port ([^ ]+).*/\1/p' "$old_mongo_unit")
  elif [[ -z ${GIVEN[--mongo]:-} && -z ${GIVEN[--bind-ip]:-} ]]; then
    MONGO=$(sw_env_value "$old_env" SUANWANG_MONGO_URI)  # it uses an external MongoDB
  fi
fi

EMBEDDED=1
[[ -n $MONGO ]] && EMBEDDED=0
(( EMBEDDED )) && SW_EXTRAS=embedded

# ------------------------------------------------------------------ check every input first
sw_check_common "$SCRIPT_DIR"
if (( ! SW_UNINSTALL )); then
  sw_check_int "$MONGO_PORT" 1 65535 "--mongo-port"
  sw_check_int "$HTTP_PORT" 1 65535 "--http-port"
  sw_check_int "$STOP_TIMEOUT" 1 86400 "--stop-timeout"
  [[ -n $SW_FW_PORT ]] && sw_check_int "$SW_FW_PORT" 1 65535 "--firewall-port"
  [[ $HTTP_HOST =~ ^[A-Za-z0-9.:-]+$ ]] || sw_die "bad --http-host '$HTTP_HOST'"
  [[ -z $TOKEN || $TOKEN =~ $SW_TOKEN_RE ]] \
    || sw_die "bad --admin-token: 16 to 256 letters, digits and . _ ~ -"
  if (( EMBEDDED )); then
    sw_check_bind_ip "$SW_CHECK_PY" "$BIND_IP"
    first=${BIND_IP%%,*}
    [[ $first == *:* ]] && first="[$first]"
    MONGO_HOSTPORT="$first:$MONGO_PORT"
    if (( SW_NO_VENV )); then
      "$SW_PYTHON" -c 'from fsm.store.embedded import find_mongod; find_mongod()' 2>/dev/null \
        || sw_die "--no-venv: $SW_PYTHON has no mongod (pip install 'suanwang[embedded]'), or pass --mongo URI"
    fi
  else
    sw_check_uri "$MONGO"
  fi
fi
SERVER_UNIT=suanwang-server.service
MONGO_UNIT=suanwang-mongo.service
ENV_FILE=$SW_ETC_DIR/server.env
DB_DIR=$SW_STATE_DIR/db
CREDS=$DB_DIR/credentials.json
WORKER_URI_FILE=$SW_ETC_DIR/worker-mongo.uri

(( SW_DRY_RUN )) && sw_say "dry run: nothing is written"

# ------------------------------------------------------------------ uninstall
if (( SW_UNINSTALL )); then
  sw_systemd_running && sw_systemd_down "$SERVER_UNIT" "$MONGO_UNIT"
  sw_remove "$SW_UNIT_DIR/$SERVER_UNIT" "$SW_UNIT_DIR/$MONGO_UNIT" "$ENV_FILE" "$WORKER_URI_FILE"
  sw_firewall_remove server
  (( SW_NO_VENV )) || sw_venv_remove "$SW_ETC_DIR/worker.env"
  if (( SW_PURGE )); then sw_remove "$SW_STATE_DIR"; else sw_say "kept $SW_STATE_DIR (the database; --purge removes it)"; fi
  sw_rmdir_if_empty "$SW_ETC_DIR" "$SW_PREFIX"
  if sw_systemd_running && (( ! SW_DRY_RUN )); then systemctl daemon-reload || true; fi
  [[ $SW_USER != root ]] && id -u "$SW_USER" >/dev/null 2>&1 && sw_say "kept user $SW_USER (userdel $SW_USER removes it)"
  if (( SW_DRY_RUN )); then sw_say "dry run: nothing was removed"; else sw_say "uninstalled the server"; fi
  exit 0
fi

# ------------------------------------------------------------------ install
sw_apt_install
sw_ensure_user "$SW_USER" "$SW_STATE_DIR" "$SW_CREATE_USER"
sw_dir "$SW_STATE_DIR" 750 "$SW_USER"
(( EMBEDDED )) && sw_dir "$DB_DIR" 700 "$SW_USER"
if (( ! SW_NO_VENV )); then
  sw_venv "$SW_VENV" "$SW_PYTHON" "$SW_SOURCE_KIND" "$SW_SOURCE" "$SW_EXTRAS" "$SW_EDITABLE" \
    "$SW_SYSTEM_SITE" "$SW_NO_DEPS" "$SW_REINSTALL"
fi

# MongoDB access control (embedded): mongod runs with --auth and a keyfile; `suanwang mongo`
# creates or updates these users from $CREDS at every start (fsm/store/access.py): admin (root),
# suanwang-server (readWrite on suanwang) and suanwang-worker (role suanwangWorker: claim and
# finish tasks, its whoami, read functions and data, wake-ups; nothing on users or settings).
if (( EMBEDDED )); then
  sw_password() {  # the stored password of user $1, else a new random one
    local old=""
    [[ -f $CREDS ]] && old=$(sed -n -E "s/^    \"$1\": \"([^\"]*)\".*/\1/p" "$CREDS")
    [[ -n $old ]] && printf '%s' "$old" || od -An -tx1 -N24 /dev/urandom | tr -d ' \n'
  }
  PW_ADMIN=$(sw_password admin); PW_SERVER=$(sw_password suanwang-server); PW_WORKER=$(sw_password suanwang-worker)
  sw_put "$CREDS" 600 "{
  \"db\": \"suanwang\",
  \"users\": {
    \"admin\": \"$PW_ADMIN\",
    \"suanwang-server\": \"$PW_SERVER\",
    \"suanwang-worker\": \"$PW_WORKER\"
  }
}
"
  if (( ! SW_DRY_RUN )) && [[ $(stat -c %U "$CREDS") != "$SW_USER" ]]; then chown "$SW_USER:" "$CREDS"; fi
  sw_say "users (created or updated by $MONGO_UNIT at its start): admin (root), suanwang-server (readWrite on suanwang), suanwang-worker (role suanwangWorker)"
  MONGO="mongodb://suanwang-server:$PW_SERVER@$MONGO_HOSTPORT/?replicaSet=suanwang&authSource=admin"
  WORKER_URI="mongodb://suanwang-worker:$PW_WORKER@$MONGO_HOSTPORT/?replicaSet=suanwang&authSource=admin"
  sw_put "$WORKER_URI_FILE" 600 "$WORKER_URI
"
fi

if [[ -z $TOKEN ]]; then
  TOKEN=$(sw_env_value "$ENV_FILE" SUANWANG_ADMIN_TOKEN)
  [[ -n $TOKEN ]] || TOKEN=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
fi
sw_put "$ENV_FILE" 600 "# Suanwang server settings: read by $SERVER_UNIT (EnvironmentFile=) and by a shell
# (set -a; . $ENV_FILE; set +a). Written by install_server.sh: re-run it to change them.
SUANWANG_MONGO_URI='$MONGO'
SUANWANG_HOST='$HTTP_HOST'
SUANWANG_PORT='$HTTP_PORT'
SUANWANG_ADMIN_TOKEN='$TOKEN'
"

units=()
mongo_exec="$SW_BIN mongo --data-dir $DB_DIR --port $MONGO_PORT --bind-ip $BIND_IP"
if (( EMBEDDED )); then
  sw_put "$SW_UNIT_DIR/$MONGO_UNIT" 644 "# Managed by suanwang install_server.sh; re-run it to change this file.
[Unit]
Description=Suanwang embedded MongoDB (single-node replica set suanwang on $BIND_IP:$MONGO_PORT)
Wants=network-online.target
After=network-online.target suanwang-firewall.service
StartLimitIntervalSec=0

[Service]
Type=simple
User=$SW_USER
Environment=HOME=$SW_STATE_DIR PYTHONUNBUFFERED=1
WorkingDirectory=$SW_STATE_DIR
ExecStart=$mongo_exec
Restart=always
RestartSec=5
# SIGTERM to the launcher only: it shuts mongod down cleanly (journal flushed).
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=$(( STOP_TIMEOUT * 2 ))
LimitNOFILE=64000

[Install]
WantedBy=multi-user.target
"
  units+=("$MONGO_UNIT")
else
  [[ -f $SW_UNIT_DIR/$MONGO_UNIT ]] && sw_remove "$SW_UNIT_DIR/$MONGO_UNIT"  # switched to an external MongoDB
fi

server_after="network-online.target"
server_wants="network-online.target"
(( EMBEDDED )) && { server_after+=" $MONGO_UNIT"; server_wants+=" $MONGO_UNIT"; }
sw_put "$SW_UNIT_DIR/$SERVER_UNIT" 644 "# Managed by suanwang install_server.sh; re-run it to change this file.
[Unit]
Description=Suanwang server: HTTP API, web pages and periodic jobs
Wants=$server_wants
After=$server_after
StartLimitIntervalSec=0

[Service]
Type=simple
User=$SW_USER
EnvironmentFile=$ENV_FILE
Environment=HOME=$SW_STATE_DIR PYTHONUNBUFFERED=1
WorkingDirectory=$SW_STATE_DIR
ExecStart=$SW_BIN server
Restart=always
RestartSec=5
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=$STOP_TIMEOUT
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
"
units+=("$SERVER_UNIT")

(( EMBEDDED )) || [[ -n $SW_FW_PORT ]] || SW_FW_PORT=27017
fw_ports=${SW_FW_PORT:-$MONGO_PORT}
if (( ${#SW_FW_NETS[@]} )); then
  if (( WEB_FIREWALL )); then
    fw_ports+=",$HTTP_PORT"
    sw_say "firewall: the web/API port $HTTP_PORT admits only the listed networks too (--firewall-open-web leaves it open)"
  else
    sw_say "firewall: the web/API port $HTTP_PORT stays open to everyone (--firewall-open-web); put TLS in front of it"
  fi
fi
sw_firewall server "$fw_ports"

if sw_systemd_running; then
  (( SW_FW_APPLY )) && units=("$SW_FW_UNIT" "${units[@]}")
  if (( SW_START )); then
    sw_systemd_up "$(( SW_CHANGED > 0 ))" "${units[@]}"
  else
    sw_run systemctl daemon-reload && sw_run systemctl enable "${units[@]}"
  fi
  sw_say "status: systemctl status ${units[*]}; logs: journalctl -u $SERVER_UNIT -f"
else
  sw_say "systemd is not in charge here (not running, or --no-systemd): start them with"
  (( EMBEDDED )) && sw_say "  $mongo_exec &"
  sw_say "  sh -c 'set -a; . $ENV_FILE; set +a; exec $SW_BIN server'"
  sw_say "or, where systemd runs: systemctl enable --now ${units[*]}"
fi
if (( EMBEDDED )); then
  sw_say "MongoDB URI for workers (user suanwang-worker): in $WORKER_URI_FILE"
else
  sw_say "MongoDB URI for workers: $MONGO"
fi
if (( EMBEDDED )) && [[ ${BIND_IP%%,*} == 127.* || ${BIND_IP%%,*} == ::1 ]]; then
  sw_warn "mongod listens on $BIND_IP only: workers on other machines cannot reach it (pass --bind-ip LAN_ADDRESS)"
fi
if (( EMBEDDED )); then
  sw_say "add a worker machine: sudo scripts/install_worker.sh --mongo \"\$(cat $WORKER_URI_FILE)\" --name NAME"
  sw_say "  (copy that file's URI to the worker machine; it holds the worker user's password)"
else
  sw_say "add a worker machine: sudo scripts/install_worker.sh --mongo '$MONGO' --name NAME"
fi
sw_say "admin token: in $ENV_FILE (SUANWANG_ADMIN_TOKEN)"
sw_summary
