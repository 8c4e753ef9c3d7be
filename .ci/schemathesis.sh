#!/usr/bin/env bash
# Fuzzes the running server's API from its own /openapi.json with schemathesis: no 5xx, every
# answer conforms to the document, and a buyer never reads another buyer's orders or payments.
# Usage: .ci/schemathesis.sh path/to/seckill-server   (starts it on 127.0.0.1:${PORT:-18080})
set -euo pipefail
server=$1
port=${SCHEMATHESIS_SECKILL_PORT:-18080}
base="http://127.0.0.1:$port"
here=$(cd "$(dirname "$0")" && pwd)
command -v schemathesis >/dev/null || pip install -q schemathesis
if curl -s -o /dev/null "$base/health"; then
  echo "port $port is taken: stop what listens there (or set SCHEMATHESIS_SECKILL_PORT)"; exit 1
fi
log=$(mktemp)
SECKILL_LISTEN="127.0.0.1:$port" SECKILL_AUTH__JWT_SECRET=schemathesis SECKILL_DEMO=true \
  SECKILL_ADMIN__PASSWORD=admin-password SECKILL_LIMITS__LOGIN_PER_IP__RATE=0 \
  "$server" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
up=
for _ in $(seq 1 300); do
  if curl -sf "$base/health" >/dev/null; then up=1; break; fi
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
# One worker: with several, CPython 3.11 can fail in ast.parse (threads) inside hypothesis.
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,own_objects_only
cd "$(mktemp -d)"
echo "== schemathesis as a buyer (logout and password change excluded: they end the token)"
schemathesis run "$base/openapi.json" -H "Authorization: Bearer $alice" -c "$checks" \
  --exclude-path /api/v1/user/logout --exclude-path /api/v1/user/password \
  --exclude-tag admin --max-time "${SCHEMATHESIS_SECKILL_SECONDS:-60}" --workers 1 --suppress-health-check all \
  --warnings off
echo "== schemathesis as an admin (admin routes)"
SCHEMATHESIS_SECKILL_ME= schemathesis run "$base/openapi.json" -H "Authorization: Bearer $admin" -c "$checks" \
  --include-tag admin --max-time "${SCHEMATHESIS_SECKILL_SECONDS:-60}" --workers 1 --suppress-health-check all \
  --warnings off
echo "== schemathesis: clean"
