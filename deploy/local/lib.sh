# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source it
# Shared by deploy/local/{up,down,status}. Sourced, never run.

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$DEPLOY_DIR/.." && pwd)"
STATE="${BEFFROI_STATE_DIR:-$HOME/.local/state/beffroi}"
LOGS="$STATE/logs"
BEFFROI_PY="${BEFFROI_PY:-$HOME/.cache/beffroi/venv/bin/python}"

# ports and cluster name: overridable, so that a second stack (another BEFFROI_STATE_DIR) can run beside
KAFKA_PORT="${BEFFROI_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${BEFFROI_KAFKA_CONTROLLER_PORT:-9093}"
MQTT_PORT="${BEFFROI_MQTT_PORT:-1883}"
MQTT_BRIDGE_PORT="${BEFFROI_MQTT_BRIDGE_PORT:-1884}"
PG_PORT="${BEFFROI_PG_PORT:-5432}"
PG_CLUSTER="${BEFFROI_PG_CLUSTER:-beffroi}"

# Mosquitto: the packet limit follows the ingest limit (settings.ingest.max_payload_bytes + 1024, see
# MQTT_PACKET_OVERHEAD in beffroi/settings.py); a SIGKILL loses at most AUTOSAVE_INTERVAL changes
MQTT_MAX_PACKET_SIZE=$((${BEFFROI_INGEST__MAX_PAYLOAD_BYTES:-8192} + 1024))
MQTT_AUTOSAVE_ON_CHANGES="${BEFFROI_MQTT_AUTOSAVE_ON_CHANGES:-true}"
MQTT_AUTOSAVE_INTERVAL="${BEFFROI_MQTT_AUTOSAVE_INTERVAL:-100}"
# started as root, Mosquitto runs as this unprivileged user (deploy/local/up: mosquitto_home)
MQTT_RUN_AS="${BEFFROI_MQTT_RUN_AS:-mosquitto}"

log() { printf '[beffroi %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[beffroi] ERROR: %s\n' "$*" >&2; exit 1; }

# --- processes and ports -------------------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid of the process listening on 127.0.0.1:PORT (or any address), empty when none
port_pid() {
    ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1
}

port_owner() {
    local pid
    pid="$(port_pid "$1")"
    if [[ -n "$pid" ]]; then
        printf 'pid %s: %s' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-160)"
    else
        printf 'an unknown process'
    fi
}

# whether /proc/PID/cmdline contains TEXT (no `| grep -q`: with pipefail, SIGPIPE would fail it)
cmdline_has() {
    local cmd
    cmd="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
    [[ "$cmd" == *"$2"* ]]
}

# pid from FILE if that process is alive and its command line contains PATTERN
live_pid() {
    local file="$1" pattern="$2" pid
    [[ -s "$file" ]] || return 1
    pid="$(tr -dc '0-9' <"$file")"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    cmdline_has "$pid" "$pattern" || return 1
    printf '%s' "$pid"
}

wait_for() {  # wait_for SECONDS COMMAND...: until COMMAND succeeds, polling 5 times a second
    local limit="$1" i
    shift
    for ((i = 0; i < limit * 5; i++)); do
        if "$@"; then return 0; fi
        sleep 0.2
    done
    return 1
}

# stop a pid with SIGTERM, wait up to SECONDS, then SIGKILL
stop_pid() {
    local pid="$1" seconds="$2" name="$3" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < seconds * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    log "$name (pid $pid) did not stop in ${seconds}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# --- the three services --------------------------------------------------------------------

kafka_pid() { live_pid "$STATE/kafka/kafka.pid" "$STATE/kafka/server.properties"; }
mosquitto_pid() { live_pid "$STATE/mosquitto/mosquitto.pid" "$STATE/mosquitto/mosquitto.conf"; }

pg_version() {
    if [[ -d /usr/lib/postgresql ]]; then
        find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' -printf '%P\n' 2>/dev/null \
            | cut -d/ -f1 | sort -n | tail -n1
    fi
}

# "online" / "down" / "" (no cluster)
pg_cluster_state() {
    local v
    v="$(pg_version)"
    [[ -n "$v" ]] && command -v pg_lsclusters >/dev/null || return 0
    pg_lsclusters -h 2>/dev/null | awk -v v="$v" -v c="$PG_CLUSTER" '$1 == v && $2 == c {print $4}' \
        | sed 's/,.*//'
}

kafka_probe() {  # a metadata request (as the admin, SASL/PLAIN) that lists at least one live broker
    local password="${BEFFROI_KAFKA_ADMIN_PASSWORD:-}"
    if [[ -z "$password" && -r "$STATE/secrets.env" ]]; then
        password="$(sed -n 's/^BEFFROI_KAFKA_ADMIN_PASSWORD=//p' "$STATE/secrets.env")"
    fi
    KAFKA_PROBE_USER=admin KAFKA_PROBE_PASSWORD="$password" \
        python3 "$DEPLOY_DIR/local/kafka_probe.py" "127.0.0.1:$KAFKA_PORT"
}
