#!/usr/bin/env bash
# Turn this machine (Debian 12 / Ubuntu 22.04+) into a Suanwang worker: a virtualenv with the
# package, /etc/suanwang/worker.env and the systemd unit suanwang-worker.service, enabled and
# started where systemd runs. Idempotent; --dry-run shows the plan; --uninstall undoes it.
#
#   sudo scripts/install_worker.sh --mongo 'mongodb://db1:27017/?replicaSet=suanwang' --name m2 --tags gpu
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib_install.sh
. "$SCRIPT_DIR/lib_install.sh"

usage() {
  cat <<USAGE
Usage: install_worker.sh --mongo URI [--name NAME] [--tags a,b] [--concurrency N] [options]

The worker:
  --mongo URI            the MongoDB every worker and the server share (mongodb:// or mongodb+srv://;
                         default: \$SUANWANG_MONGO_URI)
                         A re-run keeps the --mongo, --name, --tags and --concurrency it is not given
                         from the existing worker.env (--tags '' clears the tags).
  --name NAME            the worker's name (default: the hostname, read when it starts)
  --tags a,b             tags that tasks may require (requires.tags)
  --concurrency N        attempts run at once (default: the CPU count)
  --stop-timeout S       seconds systemd waits after SIGTERM before SIGKILL (default 60; the worker
                         drains: no new claims, running attempts get its drain timeout, 30 s)
$SW_COMMON_USAGE
USAGE
}

sw_defaults
MONGO=${SUANWANG_MONGO_URI:-}
NAME=""; TAGS=""; CONCURRENCY=""; STOP_TIMEOUT=60
declare -A GIVEN=()
while [[ $# -gt 0 ]]; do
  if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi
  case $1 in
    -h|--help) usage; exit 0 ;;
    --mongo|--name|--tags|--concurrency|--stop-timeout)
      [[ $# -ge 2 ]] || sw_die "$1 needs a value"
      GIVEN[$1]=1
      case $1 in
        --mongo) MONGO=$2 ;; --name) NAME=$2 ;; --tags) TAGS=$2 ;;
        --concurrency) CONCURRENCY=$2 ;; --stop-timeout) STOP_TIMEOUT=$2 ;;
      esac
      shift 2 ;;
    *)
      sw_common_opt "$@"
      (( SW_NARGS )) || { usage >&2; sw_die "unknown option '$1'"; }
      shift "$SW_NARGS" ;;
  esac
done

# A re-run (an upgrade: --reinstall) keeps the settings it is not given from the existing env file.
if [[ -f $SW_ETC_DIR/worker.env ]] && (( ! SW_UNINSTALL )); then
  [[ -n ${GIVEN[--mongo]:-} ]] || MONGO=$(sw_env_value "$SW_ETC_DIR/worker.env" SUANWANG_MONGO_URI)
  [[ -n ${GIVEN[--name]:-} ]] || NAME=$(sw_env_value "$SW_ETC_DIR/worker.env" SUANWANG_WORKER_NAME)
  [[ -n ${GIVEN[--tags]:-} ]] || TAGS=$(sw_env_value "$SW_ETC_DIR/worker.env" SUANWANG_WORKER_TAGS)
  [[ -n ${GIVEN[--concurrency]:-} ]] || CONCURRENCY=$(sw_env_value "$SW_ETC_DIR/worker.env" SUANWANG_CONCURRENCY)
fi

# ------------------------------------------------------------------ check every input first
sw_check_common "$SCRIPT_DIR"
if (( ! SW_UNINSTALL )); then
  sw_check_uri "$MONGO"
  [[ -n $NAME ]] && sw_check_name "$NAME"
  sw_check_tags "$TAGS"
  [[ -n $CONCURRENCY ]] && sw_check_int "$CONCURRENCY" 1 1024 "--concurrency"
  sw_check_int "$STOP_TIMEOUT" 1 86400 "--stop-timeout"
  [[ -n $SW_FW_PORT ]] && sw_check_int "$SW_FW_PORT" 1 65535 "--firewall-port"
fi
TAGS=$(tr -d ' ' <<< "$TAGS")
UNIT=suanwang-worker.service
UNIT_FILE=$SW_UNIT_DIR/$UNIT
ENV_FILE=$SW_ETC_DIR/worker.env

(( SW_DRY_RUN )) && sw_say "dry run: nothing is written"

# ------------------------------------------------------------------ uninstall
if (( SW_UNINSTALL )); then
  sw_systemd_running && sw_systemd_down "$UNIT"
  sw_remove "$UNIT_FILE" "$ENV_FILE"
  sw_firewall_remove worker
  (( SW_NO_VENV )) || sw_venv_remove "$SW_ETC_DIR/server.env"
  if (( SW_PURGE )); then sw_remove "$SW_STATE_DIR"; else sw_say "kept $SW_STATE_DIR (caches; --purge removes it)"; fi
  sw_rmdir_if_empty "$SW_ETC_DIR" "$SW_PREFIX"
  if sw_systemd_running && (( ! SW_DRY_RUN )); then systemctl daemon-reload || true; fi
  [[ $SW_USER != root ]] && id -u "$SW_USER" >/dev/null 2>&1 && sw_say "kept user $SW_USER (userdel $SW_USER removes it)"
  if (( SW_DRY_RUN )); then sw_say "dry run: nothing was removed"; else sw_say "uninstalled the worker"; fi
  exit 0
fi

# ------------------------------------------------------------------ install
sw_apt_install
sw_ensure_user "$SW_USER" "$SW_STATE_DIR" "$SW_CREATE_USER"
sw_dir "$SW_STATE_DIR" 750 "$SW_USER"
if (( ! SW_NO_VENV )); then
  sw_venv "$SW_VENV" "$SW_PYTHON" "$SW_SOURCE_KIND" "$SW_SOURCE" "$SW_EXTRAS" "$SW_EDITABLE" \
    "$SW_SYSTEM_SITE" "$SW_NO_DEPS" "$SW_REINSTALL"
fi

env_text="# Suanwang worker settings: read by $UNIT (EnvironmentFile=) and by a shell
# (set -a; . $ENV_FILE; set +a). Written by install_worker.sh: re-run it to change them.
SUANWANG_MONGO_URI='$MONGO'
"
if [[ -n $NAME ]]; then env_text+="SUANWANG_WORKER_NAME='$NAME'
"; else env_text+="# SUANWANG_WORKER_NAME unset: the worker is named after the hostname
"; fi
if [[ -n $TAGS ]]; then env_text+="SUANWANG_WORKER_TAGS='$TAGS'
"; fi
if [[ -n $CONCURRENCY ]]; then env_text+="SUANWANG_CONCURRENCY='$CONCURRENCY'
"; else env_text+="# SUANWANG_CONCURRENCY unset: one slot per CPU
"; fi
env_text+="SUANWANG_CACHE_DIR='$SW_STATE_DIR/cache'
"
sw_put "$ENV_FILE" 600 "$env_text"

unit_text="# Managed by suanwang install_worker.sh; re-run it to change this file.
[Unit]
Description=Suanwang worker: claims tasks from MongoDB and runs them
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
User=$SW_USER
EnvironmentFile=$ENV_FILE
Environment=HOME=$SW_STATE_DIR PYTHONUNBUFFERED=1
WorkingDirectory=$SW_STATE_DIR
ExecStart=$SW_BIN worker
Restart=always
RestartSec=5
# SIGTERM drains the worker: no new claims; running attempts get the drain timeout, then are
# killed and recorded as lost (retried at once elsewhere). KillMode=mixed: only the daemon gets
# SIGTERM, it stops its own children; whatever is left after TimeoutStopSec gets SIGKILL.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=$STOP_TIMEOUT
LimitNOFILE=65536
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
"
sw_put "$UNIT_FILE" 644 "$unit_text"

fw_port=$SW_FW_PORT
if [[ -z $fw_port ]]; then
  fw_port=27017
  if [[ $MONGO =~ ^mongodb://([^/?]*@)?[^/?,]*:([0-9]+) ]]; then fw_port=${BASH_REMATCH[2]}; fi
fi
sw_firewall worker "$fw_port"

if sw_systemd_running; then
  if (( SW_START )); then
    units=("$UNIT")
    (( SW_FW_APPLY )) && units=("$SW_FW_UNIT" "${units[@]}")
    sw_systemd_up "$(( SW_CHANGED > 0 ))" "${units[@]}"
  else
    sw_run systemctl daemon-reload && sw_run systemctl enable "$UNIT"
  fi
  sw_say "status: systemctl status $UNIT; logs: journalctl -u $UNIT -f"
else
  sw_say "systemd is not in charge here (not running, or --no-systemd): start the worker with"
  sw_say "  sh -c 'set -a; . $ENV_FILE; set +a; exec $SW_BIN worker'"
  sw_say "or, where systemd runs: systemctl enable --now $UNIT"
fi
sw_summary
