#!/usr/bin/env bash
# Line coverage of the library crates (seckill-core, seckill-store, seckill-broker) with
# cargo-tarpaulin, installed when missing. Runs their tests against the services .ci/run uses
# (the machine's Redis, PostgreSQL, RabbitMQ; the Redis Cluster and tansu it starts), so the
# backends' code is measured too. Prints the per-file table and the total; writes
# target/coverage/tarpaulin-report.json. Not a CI gate: it builds everything again with
# instrumentation (about 15 minutes on 2 cores). Usage: scripts/coverage.sh [extra tarpaulin args]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-tarpaulin >/dev/null || cargo install cargo-tarpaulin --locked

export SECKILL_TEST_REDIS_URL=${SECKILL_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
export SECKILL_TEST_PG_URL=${SECKILL_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
export SECKILL_TEST_AMQP_URL=${SECKILL_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
.ci/redis-cluster.sh start
export SECKILL_TEST_REDIS_CLUSTER_URL=redis-cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
.ci/tansu.sh start
export SECKILL_TEST_KAFKA_BROKERS=127.0.0.1:9092
trap '.ci/redis-cluster.sh stop || true; .ci/tansu.sh stop || true' EXIT
export PROPTEST_CASES=${PROPTEST_CASES:-64}

# The LLVM engine (rustc's -C instrument-coverage; no llvm-tools needed), its own target
# directory so the normal build is not invalidated; doc-tests and benches are not run. Excluded:
# the other crates, tests, benches, the conformance suites (test support shipped in the lib)
# and generated code under target/ (the server's gRPC stubs).
cargo tarpaulin --engine llvm --skip-clean --target-dir target/coverage \
  -p seckill-core -p seckill-store -p seckill-broker \
  --features seckill-core/conformance,seckill-store/redis,seckill-store/postgres,seckill-broker/redis-stream,seckill-broker/amqp,seckill-broker/kafka \
  --lib --tests \
  --exclude-files 'seckill-server/*' 'seckill-cli/*' 'seckill-chaos/*' 'seckill-pay/*' '*/tests/*' '*/benches/*' 'seckill-core/src/conformance/*' 'target/*' \
  --no-fail-fast --out Stdout --out Json --output-dir target/coverage --timeout 600 "$@"
