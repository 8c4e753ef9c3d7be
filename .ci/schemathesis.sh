#!/usr/bin/env bash
# Fuzzes the running server's API from its own /openapi.json with schemathesis, every check
# (`-c all`: no 5xx, answers conform to the document, valid data accepted and invalid refused,
# auth not ignored, created objects readable and deleted ones gone, …, and the hooks' custom
# own_objects_only: a buyer never reads another buyer's orders or payments) in every phase
# (examples, coverage, fuzzing, and the stateful phase that follows links between operations).
# Usage: .ci/schemathesis.sh path/to/seckill-server  (starts it on 127.0.0.1:$SCHEMATHESIS_SECKILL_PORT)
# Env:
#   SCHEMATHESIS_SECKILL_SECONDS   time budget of each of the two runs (buyer, admin); default 60
#   SCHEMATHESIS_SECKILL_PORT      default 18080
#   SCHEMATHESIS_SECKILL_BACKENDS  memory (default) or redis-pg: every Redis backend on
#                                  SCHEMATHESIS_SECKILL_REDIS_URL (default $SECKILL_TEST_REDIS_URL,
#                                  else redis://127.0.0.1:6379/0) under a prefix of its own, the
#                                  broker on Redis streams, the repositories in a schema of their
#                                  own on SCHEMATHESIS_SECKILL_PG_URL (default $SECKILL_TEST_PG_URL,
#                                  else postgres://postgres@127.0.0.1:5432/test), created here
#                                  and dropped on exit. Any SECKILL_BACKENDS__* the caller exports
#                                  reaches the server as well (and wins over these).
#   SCHEMATHESIS_SECKILL_CHECKS    default all;  SCHEMATHESIS_SECKILL_PHASES  default all four
#   SCHEMATHESIS_SECKILL_ARGS      extra arguments for both runs (e.g. --seed N)
#   SCHEMATHESIS_SECKILL_SCHEMA    a document file to fuzz from instead of the server's own
#                                  /openapi.json (to try a change of the annotations before a build)
#   SCHEMATHESIS_SECKILL_REPORTS   a folder: each run's JSON report, NDJSON events and reproducing
#                                  pytest file go to FOLDER/buyer and FOLDER/admin
set -euo pipefail
server=$1
port=${SCHEMATHESIS_SECKILL_PORT:-18080}
base="http://127.0.0.1:$port"
here=$(cd "$(dirname "$0")" && pwd)
# The version the hooks and the failure filter were written against (checks and generation change
# between minor versions: 4.3x began spelling integers as `2.0` in JSON bodies).
command -v schemathesis >/dev/null || pip install -q "schemathesis==4.32.5"
if curl -s -o /dev/null "$base/health"; then
  echo "port $port is taken: stop what listens there (or set SCHEMATHESIS_SECKILL_PORT)"; exit 1
fi
log=$(mktemp)
work=$(mktemp -d)
pid= pg_url= schema= redis_url= prefix=
cleanup() {
  [[ -z $pid ]] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  if [[ -n $schema ]]; then
    PGOPTIONS="-c client_min_messages=warning" psql "$pg_url" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" || true
  fi
  if [[ -n $prefix ]]; then
    redis-cli -u "$redis_url" --scan --pattern "$prefix:*" | xargs -r -n 500 redis-cli -u "$redis_url" DEL >/dev/null || true
  fi
  rm -rf "$log" "$work"
}
trap cleanup EXIT

backends=${SCHEMATHESIS_SECKILL_BACKENDS:-memory}
server_env=()
case $backends in
  memory) ;;
  redis-pg)
    redis_url=${SCHEMATHESIS_SECKILL_REDIS_URL:-${SECKILL_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}}
    pg_url=${SCHEMATHESIS_SECKILL_PG_URL:-${SECKILL_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}}
    prefix="schemathesis$$"
    R="$redis_url?prefix=$prefix"
    psql "$pg_url" -qc "CREATE SCHEMA schemathesis$$"
    schema="schemathesis$$"
    # The server migrates the empty schema when it starts (no `migrate=false` in the URL).
    for kind in STOCK DELAY LOCK RATE_LIMIT IDEMPOTENCY SESSIONS; do
      server_env+=("SECKILL_BACKENDS__$kind=$R")
    done
    # A persistent database: real-name sessions need the deployment's document key.
    server_env+=("SECKILL_BACKENDS__BROKER=${R/redis:/redis-stream:}"
      "SECKILL_BACKENDS__DATABASE=$pg_url?schema=$schema"
      "SECKILL_SALE__DOCUMENT_KEY=schemathesis-document-key")
    ;;
  *) echo "SCHEMATHESIS_SECKILL_BACKENDS: memory or redis-pg, not $backends"; exit 1 ;;
esac
# The caller's own SECKILL_BACKENDS__* win over the ones above.
while IFS= read -r kv; do server_env+=("$kv"); done < <(env | grep '^SECKILL_BACKENDS__' || true)
printf '== backends: %s\n' "$backends"
for kv in "${server_env[@]}"; do echo "   $kv"; done

env "${server_env[@]}" \
  SECKILL_LISTEN="127.0.0.1:$port" SECKILL_AUTH__JWT_SECRET=schemathesis SECKILL_DEMO=true \
  SECKILL_ADMIN__PASSWORD=admin-password SECKILL_LIMITS__LOGIN_PER_IP__RATE=0 \
  "$server" >"$log" 2>&1 &
pid=$!
up=
for _ in $(seq 1 300); do
  if curl -sf "$base/health" >/dev/null; then up=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
[[ -n $up ]] || { echo "the server did not come up:"; cat "$log"; exit 1; }

j() {
  python3 -c "import sys,json
t=sys.stdin.read()
try: print(eval(sys.argv[1], {'d': json.loads(t)}))
except Exception as e: sys.exit(f'unexpected answer for {sys.argv[1]}: {t!r} ({e})')" "$1"
}
post() { curl -s -X POST "$base$1" -H 'content-type: application/json' ${3:+-H "authorization: Bearer $3"} -d "${2:-{\}}"; }
token() {
  post /api/v1/user/register "{\"username\":\"$1\",\"password\":\"correct-horse\"}" >/dev/null
  post /api/v1/user/login "{\"username\":\"$1\",\"password\":\"correct-horse\"}" | j 'd["data"]["token"]'
}
alice=$(token st-alice)
bob=$(token st-bob)
admin=$(post /api/v1/user/login '{"username":"admin","password":"admin-password"}' | j 'd["data"]["token"]')
alice_id=$(curl -s "$base/api/v1/user/profile" -H "authorization: Bearer $alice" | j 'd["data"]["id"]')
act=$(curl -s "$base/api/v1/seckill/activities" | j 'd["data"]["items"][0]["id"]')
product=$(curl -s "$base/api/v1/seckill/activities" | j 'd["data"]["items"][0]["product_id"]')
orders=() payments=()
for who in "$alice" "$bob"; do
  order=$(post "/api/v1/seckill/activities/$act/buy" '{"quantity":1}' "$who" | j 'd["data"]["order_id"]')
  for _ in $(seq 1 50); do
    curl -sf "$base/api/v1/orders/$order" -H "authorization: Bearer $who" >/dev/null && break
    sleep 0.1
  done
  orders+=("$order")
  payments+=("$(post "/api/v1/orders/$order/pay" '{}' "$who" | j 'd["data"]["payment_id"]')")
done
# Every buyer route that names an object answers 404 for another buyer's.
expect_404() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X "$1" "$base$2" -H "authorization: Bearer $alice" \
    -H 'content-type: application/json' ${3:+-d "$3"})
  [[ $code == 404 ]] || { echo "cross-user access: $1 $2 ${3:-} answered $code to another buyer"; exit 1; }
}
bob_order=${orders[1]} bob_payment=${payments[1]}
expect_404 GET "/api/v1/orders/$bob_order"
expect_404 GET "/api/v1/payment/$bob_payment/status"
expect_404 POST "/api/v1/orders/$bob_order/cancel"
expect_404 POST "/api/v1/orders/$bob_order/pay"
expect_404 POST /api/v1/payment/create "{\"order_id\":\"$bob_order\"}"
expect_404 POST "/api/v1/payment/$bob_payment/refund"
expect_404 POST "/api/v1/payment/mock/$bob_payment/complete"
echo "== cross-user access: every buyer route answers 404 for another buyer's order or payment"

export SCHEMATHESIS_SECKILL_ORDERS=$(IFS=,; echo "${orders[*]}")
export SCHEMATHESIS_SECKILL_PAYMENTS=$(IFS=,; echo "${payments[*]}")
export SCHEMATHESIS_SECKILL_CATALOG="$act,$product"
export SCHEMATHESIS_SECKILL_ME=$alice_id SCHEMATHESIS_HOOKS=schemathesis_hooks
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
# `all` takes the hooks' registered checks too (own_objects_only), as schemathesis 4 does.
checks=${SCHEMATHESIS_SECKILL_CHECKS:-all}
phases=${SCHEMATHESIS_SECKILL_PHASES:-examples,coverage,fuzzing,stateful}
secs=${SCHEMATHESIS_SECKILL_SECONDS:-60}
read -r -a extra <<<"${SCHEMATHESIS_SECKILL_ARGS:-}"
# One worker: with several, CPython 3.11 can fail in ast.parse (threads) inside hypothesis.
# Unsanitized output: the tokens are this throwaway server's, and a failure's curl line must show
# the Idempotency-Key it sent (sanitized, an empty key reads `[Filtered]`).
common=(-c "$checks" --phases "$phases" --max-time "$secs" --workers 1
  --suppress-health-check all --warnings off --output-sanitize false ${extra[@]+"${extra[@]}"})
report_root=${SCHEMATHESIS_SECKILL_REPORTS:+$(realpath -m "$SCHEMATHESIS_SECKILL_REPORTS")}
reports() { [[ -z $report_root ]] || echo --report json,ndjson,pytest --report-dir "$report_root/$1"; }
location="$base/openapi.json"
if [[ -n ${SCHEMATHESIS_SECKILL_SCHEMA:-} ]]; then
  location=$(realpath "$SCHEMATHESIS_SECKILL_SCHEMA")
  common+=(--url "$base")
fi
failed=()
cd "$work"
schemathesis --version
echo "== schemathesis as a buyer (logout and password change excluded: they end the token)"
# shellcheck disable=SC2046 # reports' words
schemathesis run "$location" -H "Authorization: Bearer $alice" \
  --exclude-path /api/v1/user/logout --exclude-path /api/v1/user/password \
  --exclude-tag admin "${common[@]}" $(reports buyer) || failed+=(buyer)
echo "== schemathesis as an admin (admin routes; not PUT /admin/config, which would reconfigure the"
echo "   server under test, e.g. shed the rest of the run: tests/live.rs and the CLI test cover it)"
# shellcheck disable=SC2046
SCHEMATHESIS_SECKILL_ME= schemathesis run "$location" \
  -H "Authorization: Bearer $admin" --include-tag admin --exclude-operation-id set_config \
  "${common[@]}" $(reports admin) || failed+=(admin)
if (( ${#failed[@]} )); then
  echo "== schemathesis ($backends): the ${failed[*]} run failed"; exit 1
fi
echo "== schemathesis: clean ($backends)"
