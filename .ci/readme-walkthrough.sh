#!/usr/bin/env bash
# Runs the README's curl walkthroughs, exactly as written, against the server binary started
# with no configuration, and checks that the first ends with the order paid and the second
# (a concert by price tier, continuing in the same shell) with the tiered order's amount, lines
# and masked holders, a taken document refused on the way. Stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-${CARGO_TARGET_DIR:-target}/debug/seckill-server}
[ -x "$bin" ] || { echo "no server binary at $bin (build it first: cargo build -p seckill-server)"; exit 1; }
log=$(mktemp)
"$bin" > "$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT

up=no
for _ in $(seq 1 300); do
  if curl -sf http://127.0.0.1:8080/health > /dev/null; then up=yes; break; fi
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
if [ "$up" != yes ]; then
  echo "the server did not come up on 127.0.0.1:8080"; tail -n 30 "$log"; exit 1
fi

# The shell block under a heading of README.md.
block() {
  awk -v h="$1" '$0 == h {on=1} on && /^```sh/ {inblk=1; next} inblk && /^```/ {exit} inblk {print}' README.md
}
script=$(block "## A purchase, with curl")
tiers=$(block "## A concert by price tier, with curl")
[ -n "$script" ] || { echo "walkthrough block not found in README.md"; exit 1; }
[ -n "$tiers" ] || { echo "the tier walkthrough block not found in README.md"; exit 1; }
out=$(bash -euo pipefail -c "$script
echo '--- tiers'
$tiers")
echo "$out" | tail -n 3
paid=$(echo "$out" | sed -n '/^--- tiers$/{x;p;q};h')
last=$(echo "$out" | tail -n 1)
if [ "$paid" != '"paid"' ]; then
  echo "README walkthrough did not end with the order paid (its last line: $paid)"
  echo "--- server log"; tail -n 30 "$log"
  exit 1
fi
want='{"amount":244000,"lines":[{"tier":2,"quantity":2},{"tier":3,"quantity":1,"seats":["VIP-1-5"]}],"holders":["张三 110***********002X","李四 440***********1239","Anna Li E1*****78"]}'
refused='{"code":3015,"holders":["110***********002X"]}'
if ! echo "$out" | grep -qxF "$refused"; then
  echo "README tier walkthrough did not show the taken document refused ($refused)"
  echo "$out" | tail -n 5
  exit 1
fi
if [ "$last" != "$want" ]; then
  echo "README tier walkthrough did not end with $want (last line: $last)"
  echo "--- server log"; tail -n 30 "$log"
  exit 1
fi
echo "README walkthrough: ok"
