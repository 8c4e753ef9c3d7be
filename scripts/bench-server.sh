#!/usr/bin/env bash
# Fires `seckill bench` at the release server: the success path and the sold-out path (each
# with the /health baseline in the same run), then an open loop at half the success path's
# measured maximum. Every run must end with a clean verdict (the bench exits non-zero if not).
#
# Usage: scripts/bench-server.sh memory|redis-stream|amqp|kafka [runs]
#   memory        every backend in memory (the server with no config)
#   redis-stream  Redis for stock, delay, lock, rate limit, idempotency and sessions;
#   amqp          PostgreSQL for the database; the named broker
#   kafka         (Kafka: start tansu first, .ci/tansu.sh start)
#
# Build first: cargo build --release -p seckill-server -p seckill-cli
# The services' URLs come from BENCH_REDIS_URL, BENCH_PG_URL, BENCH_AMQP_URL and
# BENCH_KAFKA_BROKERS (defaults: the machine's loopback services). The server listens on
# 127.0.0.1:${BENCH_PORT:-18480}; the script stops it and drops what it created when it exits.
# JSON reports go to ${BENCH_OUT:-target/bench-server}/<kind>-<run>-<phase>.json.
# Requests in flight for the success and sold-out paths: ${BENCH_CONCURRENCY:-32}.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-memory}
runs=${2:-1}
bin=${BENCH_BIN:-target/release}
port=${BENCH_PORT:-18480}
out=${BENCH_OUT:-target/bench-server}
redis=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}
pg=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
amqp=${BENCH_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
kafka=${BENCH_KAFKA_BROKERS:-127.0.0.1:9092}
tag="bench$$"
conc=${BENCH_CONCURRENCY:-32}
mkdir -p "$out"

# What every configuration shares: no login or buy rate limits (the bench's buyers all come
# from one IP and fire as fast as they can), its own ports, JSON logs at warn.
export SECKILL_LISTEN="127.0.0.1:$port" SECKILL_GRPC_LISTEN="127.0.0.1:$((port + 1))"
export SECKILL_LIMITS__LOGIN_PER_IP__RATE=0 SECKILL_SALE__BUY_RATE_PER_SEC=0 SECKILL_LOG__LEVEL=warn

schema=""
cleanup() {
  [[ -n ${server_pid:-} ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  if [[ -n $schema ]]; then
    PGOPTIONS="-c client_min_messages=warning" psql "$pg" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" || true
    redis-cli -u "$redis" --scan --pattern "$tag*" | xargs -r -n 500 redis-cli -u "$redis" del >/dev/null || true
  fi
}
trap cleanup EXIT

case $kind in
  memory) ;;
  redis-stream | amqp | kafka)
    r="$redis?prefix=$tag"
    case $kind in
      redis-stream) broker="${r/redis:/redis-stream:}" ;;
      amqp) broker="$amqp?groups=order-workers&prefix=$tag&expires=60000" ;;
      # tansu 0.6 cannot resume a consumer inside a record batch: one message per batch
      # (docs/operations.md). Against a real Kafka, drop producer.batch.num.messages.
      kafka) broker="kafka://$kafka?prefix=$tag&producer.batch.num.messages=1" ;;
    esac
    schema="${tag}_${kind//-/_}"
    psql "$pg" -qc "CREATE SCHEMA $schema"
    "$bin/seckill" migrate --database "$pg?schema=$schema" >/dev/null
    export SECKILL_BACKENDS__STOCK=$r SECKILL_BACKENDS__DELAY=$r SECKILL_BACKENDS__LOCK=$r \
      SECKILL_BACKENDS__RATE_LIMIT=$r SECKILL_BACKENDS__IDEMPOTENCY=$r SECKILL_BACKENDS__SESSIONS=$r \
      SECKILL_BACKENDS__DATABASE="$pg?schema=$schema&migrate=false" SECKILL_BACKENDS__BROKER="$broker"
    ;;
  *) echo "usage: $0 memory|redis-stream|amqp|kafka [runs]" >&2; exit 2 ;;
esac

"$bin/seckill-server" >"$out/$kind-server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$out/$kind-server.log" >&2; exit 1; }
  sleep 0.1
done

bench() { # phase, then the bench's arguments
  local phase=$1
  shift
  "$bin/seckill" --server "http://127.0.0.1:$port" --json bench --buyers 300 --max-seconds 120 "$@" \
    >"$out/$kind-$run-$phase.json"
}

for run in $(seq 1 "$runs"); do
  bench success --stock 40000 --limit 1000 --requests 30000 --concurrency "$conc" --baseline
  bench soldout --stock 50 --limit 1 --requests 30000 --concurrency "$conc" --baseline
  max=$(jq '.buy.throughput_per_sec' "$out/$kind-$run-success.json")
  rate=$(jq -n "$max / 2 | floor")
  bench openloop --stock 50000 --limit 1000 --requests $((rate * 3)) --concurrency 64 --rate "$rate"
  for phase in success soldout openloop; do
    jq -r --arg k "$kind" --arg r "$run" --arg p "$phase" '
      [$k, $r, $p, (.buy.throughput_per_sec | floor),
       ((.baseline.throughput_per_sec // 0) | floor),
       ((.ratio_to_baseline // 0) * 100 | round / 100),
       .buy.latency_ms.p50, .buy.latency_ms.p99, .buy.latency_ms.p99_9,
       (.buy.outcomes | tostring), (if .verdict.clean then "clean" else "VIOLATED" end)]
      | @tsv' "$out/$kind-$run-$phase.json"
  done
done
