#!/usr/bin/env bash
# Starts (or stops) the Kafka-API broker tansu on 127.0.0.1:${SECKILL_TANSU_PORT:-9092} with
# in-memory storage, installing it with cargo first when it is missing (several minutes the
# first time). Usage: tansu.sh start|restart|stop
#   start    install if needed, start, wait until it accepts connections
#   restart  stop, then start on the same port (everything it held is gone: memory storage)
#   stop     stop the tansu this script started
set -euo pipefail
port=${SECKILL_TANSU_PORT:-9092}
dir=${SECKILL_TANSU_DIR:-/tmp/seckill-tansu-$port}
pidfile="$dir/pid"

# Whether the installed tansu was built with the libsql feature (cargo records it).
has_libsql() {
  grep -o '"tansu [^"]*"[^}]*' "${CARGO_HOME:-$HOME/.cargo}/.crates2.json" 2>/dev/null | grep -q '"libsql"'
}

up() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

stop() {
  if [[ -f $pidfile ]]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    for _ in $(seq 1 50); do up || break; sleep 0.1; done
    rm -f "$pidfile"
  fi
}

start() {
  if ! command -v tansu >/dev/null; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  # dynostore: the memory storage this script uses; libsql: the SQLite storage of the Kafka
  # restart test's own tansu (it outlives a restart). A tansu without libsql is reinstalled.
  if ! command -v tansu >/dev/null || ! has_libsql; then
    echo "installing tansu (cargo install tansu --locked --features dynostore,libsql)"
    cargo install tansu --locked --features dynostore,libsql
  fi
  if up; then
    echo "a Kafka-API broker already listens on 127.0.0.1:$port; using it"
    return 0
  fi
  mkdir -p "$dir"
  setsid tansu broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$dir/tansu.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    if up; then
      echo "tansu up on 127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  echo "tansu did not come up; its log:" >&2
  cat "$dir/tansu.log" >&2
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|restart|stop" >&2; exit 2 ;;
esac
