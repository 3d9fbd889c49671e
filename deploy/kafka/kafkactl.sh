#!/usr/bin/env bash
# kafkactl.sh: the local single-node Kafka broker (KRaft, broker+controller
# on 127.0.0.1) that development and the tests run against.
#
#   kafkactl.sh fetch    put the broker's jars in the cache (once; Maven)
#   kafkactl.sh start    fetch, configure, format on first start, run in the
#                        background and wait until the broker answers
#   kafkactl.sh stop     controlled shutdown (SIGTERM), SIGKILL after a timeout
#   kafkactl.sh status   print the bootstrap address and exit 0 if running,
#                        exit 3 if not
#
# Environment (defaults in brackets; the same names amiwatch/settings.py reads):
#   AMIWATCH_KAFKA_VERSION [3.9.1]  AMIWATCH_KAFKA_HOME [~/.cache/amiwatch/kafka-VERSION]
#   AMIWATCH_STATE_DIR [<repo>/var] AMIWATCH_KAFKA_PORT [19092]
#   AMIWATCH_KAFKA_CONTROLLER_PORT [19093]  AMIWATCH_KAFKA_HEAP [512m]
#   AMIWATCH_KAFKA_START_TIMEOUT [90 s]     AMIWATCH_KAFKA_STOP_TIMEOUT [30 s]
#   AMIWATCH_PYTHON [<repo>/.venv/bin/python, else python3]: runs the readiness
#   probe, which needs kafka-python.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

VERSION=${AMIWATCH_KAFKA_VERSION:-3.9.1}
KAFKA_HOME=${AMIWATCH_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/amiwatch/kafka-$VERSION}
STATE_DIR=${AMIWATCH_STATE_DIR:-$REPO/var}
PORT=${AMIWATCH_KAFKA_PORT:-19092}
CONTROLLER_PORT=${AMIWATCH_KAFKA_CONTROLLER_PORT:-19093}
HEAP=${AMIWATCH_KAFKA_HEAP:-512m}
START_TIMEOUT=${AMIWATCH_KAFKA_START_TIMEOUT:-90}
STOP_TIMEOUT=${AMIWATCH_KAFKA_STOP_TIMEOUT:-30}
if [[ -z ${AMIWATCH_PYTHON:-} ]]; then
    AMIWATCH_PYTHON=$REPO/.venv/bin/python
    [[ -x $AMIWATCH_PYTHON ]] || AMIWATCH_PYTHON=python3
fi
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java

mkdir -p "$STATE_DIR/kafka"
KDIR=$(cd "$STATE_DIR/kafka" && pwd)
DATA_DIR=$KDIR/data
CONFIG=$KDIR/server.properties
PID_FILE=$KDIR/kafka.pid
LOG_FILE=$KDIR/kafka.log
CLUSTER_ID_FILE=$KDIR/cluster.id
BOOTSTRAP=127.0.0.1:$PORT
CLASSPATH_GLOB="$KAFKA_HOME/jars/*"
LOG4J="-Dlog4j.configuration=file:$HERE/log4j.properties"

die() {
    echo "kafkactl: $*" >&2
    exit 1
}

# A pid is alive while it exists and is not a zombie (a broker that died
# during `start` stays a zombie of this script until it exits).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${stat##*) } != Z* ]]
}

# The broker's pid, if the pid file names a live process running our config
# (so a recycled pid never counts as our broker).
broker_pid() {
    local pid
    pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$CONFIG" || return 1
    echo "$pid"
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

log_tail() {
    echo "--- last lines of $LOG_FILE ---" >&2
    tail -n 40 "$LOG_FILE" >&2 2>/dev/null || true
}

# The cache is complete when its marker (written last) names this version
# and this POM; anything else is fetched again from scratch.
fetched() {
    [[ -f $KAFKA_HOME/.complete && $(<"$KAFKA_HOME/.complete") == "$1" ]]
}

cmd_fetch() {
    local stamp
    stamp="$VERSION $(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
    fetched "$stamp" && return 0
    command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Kafka $VERSION"
    mkdir -p "$KAFKA_HOME"
    # One fetch at a time (two test sessions may start together on a fresh
    # machine). The subshell holds the lock, so no broker ever inherits it.
    (
        flock 9
        fetched "$stamp" && exit 0
        echo "kafkactl: fetching Kafka $VERSION into $KAFKA_HOME" >&2
        rm -rf "$KAFKA_HOME/jars.tmp" "$KAFKA_HOME/.complete"
        # (sed drops the colour codes Maven 3.8 prints even in batch mode)
        mvn -q -B -f "$HERE/pom.xml" -Dkafka.version="$VERSION" \
            dependency:copy-dependencies -DoutputDirectory="$KAFKA_HOME/jars.tmp" 2>&1 \
            | sed $'s/\e\\[[0-9;]*m//g' >&2 || die "mvn could not fetch Kafka $VERSION"
        rm -rf "$KAFKA_HOME/jars"
        mv "$KAFKA_HOME/jars.tmp" "$KAFKA_HOME/jars"
        echo "$stamp" >"$KAFKA_HOME/.complete"
    ) 9>"$KAFKA_HOME/.lock"
}

write_config() {
    local text
    text=$(<"$HERE/server.properties.in")
    text=${text//@PORT@/$PORT}
    text=${text//@CONTROLLER_PORT@/$CONTROLLER_PORT}
    text=${text//@DATA_DIR@/$DATA_DIR}
    printf '%s\n' "$text" >"$CONFIG"
}

# KRaft storage is formatted once with a cluster id that is generated once
# and kept, so a restart finds its topics and offsets again.
format_storage() {
    [[ -f $DATA_DIR/meta.properties ]] && return 0
    if [[ ! -s $CLUSTER_ID_FILE ]]; then
        "$JAVA" "$LOG4J" -cp "$CLASSPATH_GLOB" kafka.tools.StorageTool random-uuid \
            2>>"$LOG_FILE" >"$CLUSTER_ID_FILE"
    fi
    "$JAVA" "$LOG4J" -cp "$CLASSPATH_GLOB" kafka.tools.StorageTool format \
        -t "$(<"$CLUSTER_ID_FILE")" -c "$CONFIG" --ignore-formatted >>"$LOG_FILE" 2>&1 \
        || { log_tail; die "formatting $DATA_DIR failed"; }
}

# Waits until the broker answers a metadata request listing itself, or
# fails as soon as the process dies.
wait_until_ready() {
    "$AMIWATCH_PYTHON" - "$BOOTSTRAP" "$1" "$START_TIMEOUT" <<'EOF'
import socket, sys, time
from kafka.admin import KafkaAdminClient

bootstrap, pid, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
host, port = bootstrap.rsplit(":", 1)
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(") ", 1)[1].startswith("Z"):
                raise FileNotFoundError
    except FileNotFoundError:
        sys.exit("the broker process exited")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                                 bootstrap_timeout_ms=3000)
        try:
            if admin.describe_cluster()["brokers"]:
                sys.exit(0)
        finally:
            admin.close()
    except Exception:
        pass  # not listening yet, or not serving metadata yet
    time.sleep(0.2)
sys.exit(f"no answer from {bootstrap} within {timeout:.0f} s")
EOF
}

cmd_start() {
    local pid p
    if pid=$(broker_pid); then
        echo "kafkactl: Kafka already running (pid $pid) at $BOOTSTRAP" >&2
        echo "$BOOTSTRAP"
        return 0
    fi
    for p in "$PORT" "$CONTROLLER_PORT"; do
        port_in_use "$p" && die "port $p is in use by another process" \
            "(a broker with another AMIWATCH_STATE_DIR? set AMIWATCH_KAFKA_PORT/AMIWATCH_KAFKA_CONTROLLER_PORT)"
    done
    command -v "$JAVA" >/dev/null || die "Java 17 or newer is needed to run Kafka (or set JAVA_HOME)"
    cmd_fetch
    mkdir -p "$DATA_DIR"
    [[ -f $LOG_FILE ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
    write_config
    format_storage
    # Job control gives the broker its own process group, so a Ctrl-C meant
    # for the caller (a terminal, pytest) does not reach it; stop does.
    set -m
    nohup "$JAVA" -Xms128m "-Xmx$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true "$LOG4J" \
        -cp "$CLASSPATH_GLOB" kafka.Kafka "$CONFIG" </dev/null >>"$LOG_FILE" 2>&1 &
    pid=$!
    set +m
    echo "$pid" >"$PID_FILE"
    if ! wait_until_ready "$pid"; then
        log_tail
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
        rm -f "$PID_FILE"
        die "Kafka did not start at $BOOTSTRAP (full log: $LOG_FILE)"
    fi
    echo "kafkactl: Kafka $VERSION running (pid $pid) at $BOOTSTRAP, data in $DATA_DIR" >&2
    echo "$BOOTSTRAP"
}

cmd_stop() {
    local pid waited=0
    if ! pid=$(broker_pid); then
        rm -f "$PID_FILE"
        echo "kafkactl: Kafka not running" >&2
        return 0
    fi
    # SIGTERM runs the broker's controlled shutdown (logs flushed, clean
    # shutdown marker written, so the next start skips log recovery).
    kill -TERM "$pid"
    while alive "$pid" && ((waited < STOP_TIMEOUT * 10)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if alive "$pid"; then
        echo "kafkactl: Kafka (pid $pid) still running after ${STOP_TIMEOUT}s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        while alive "$pid"; do sleep 0.1; done
    fi
    rm -f "$PID_FILE"
    echo "kafkactl: Kafka stopped" >&2
}

cmd_status() {
    local pid
    if pid=$(broker_pid); then
        echo "$BOOTSTRAP"
        return 0
    fi
    echo "kafkactl: Kafka not running (state dir $STATE_DIR)" >&2
    return 3
}

case ${1:-} in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 start|stop|status|fetch" >&2
        exit 2
        ;;
esac
