#!/usr/bin/env bash
# Starts (or stops) a 3-master Redis Cluster on 127.0.0.1:7101-7103 from the machine's
# redis-server, for the cluster conformance runs. Usage: redis-cluster.sh start|stop
set -euo pipefail
ports=(7101 7102 7103)
dir=${SECKILL_CLUSTER_DIR:-/tmp/seckill-redis-cluster}

stop() {
  for p in "${ports[@]}"; do
    redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
}

start() {
  stop
  mkdir -p "$dir"
  for p in "${ports[@]}"; do
    mkdir -p "$dir/$p"
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "$dir/$p/nodes.conf" --cluster-node-timeout 2000 \
      --save "" --appendonly no --dir "$dir/$p" --daemonize yes \
      --logfile "$dir/$p/redis.log"
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 1 50); do
      redis-cli -p "$p" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
  redis-cli --cluster create 127.0.0.1:7101 127.0.0.1:7102 127.0.0.1:7103 \
    --cluster-replicas 0 --cluster-yes >/dev/null
  for _ in $(seq 1 100); do
    if redis-cli -p 7101 cluster info | grep -q 'cluster_state:ok'; then
      echo "redis cluster up on 127.0.0.1:7101-7103"
      return 0
    fi
    sleep 0.1
  done
  echo "redis cluster did not become ready" >&2
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
