#!/usr/bin/env bash
# The complete flow's server CPU on a fresh store and on a store holding
# PREFILL flows' worth of rows (#15; numbers in BENCHMARKS.md).
#
#   cargo build --release -p fapi-examples --bins
#   examples/benches/growth.sh ALG PREFILL [FLOWS]
#
# ALG: the bank's signing algorithm (PS256, ES256, EdDSA). Two data
# directories: /tmp/fapi-growth-ALG-fresh (made anew each time) and
# /tmp/fapi-growth-ALG-filled (`bank prefill --flows PREFILL`, made once
# and kept, since filling takes minutes; GROWTH_PREPARE_ONLY=1 only makes
# it). Then two loadgen runs of FLOWS complete flows (default 2000,
# concurrency 8) against each, the bank with rate limits off, and
# `verify-audit` of the filled store.
set -euo pipefail
alg=${1:?ALG}
fill=${2:?PREFILL}
flows=${3:-2000}
bin=${BIN:-target/release}
fresh=/tmp/fapi-growth-$alg-fresh
filled=/tmp/fapi-growth-$alg-filled

setup() {
  rm -rf "$1"
  "$bin/bank" init --data-dir "$1" --signing-alg "$alg" >/dev/null
  "$bin/bank" tpp onboard --config "$1/bank.json" \
    --software-statement "$1/tpp-a.ssa.jwt" --certificate "$1/tpp-a.pem" >/dev/null
}

if [ ! -f "$filled/prefilled-$fill" ]; then
  setup "$filled"
  "$bin/bank" prefill --config "$filled/bank.json" --flows "$fill" 2>/dev/null
  touch "$filled/prefilled-$fill"
fi
[ "${GROWTH_PREPARE_ONLY:-0}" = 1 ] && exit 0
setup "$fresh"

run() {
  RUST_LOG=warn "$bin/bank" serve --config "$1/bank.json" --rate-limit 0 --customer-rate-limit 0 \
    >>"$1/serve.log" 2>&1 &
  local pid=$!
  # ready when the customer listener accepts
  until (exec 3<>/dev/tcp/127.0.0.1/8444) 2>/dev/null; do
    kill -0 "$pid" || { echo "bank exited; see $1/serve.log" >&2; exit 1; }
    sleep 0.2
  done
  "$bin/loadgen" --discovery https://localhost:8444/.well-known/openid-configuration \
    --server-ca "$1/scheme-ca.pem" --client-id tpp-a --certificate "$1/tpp-a.pem" \
    --key-dir "$1" --flows "$flows" --concurrency 8 --calls 1000 --bank-pid "$pid" |
    grep -E "flows/s|per complete flow"
  kill -TERM "$pid"
  wait "$pid" || true
}

for d in "$fresh" "$filled"; do
  echo "== $alg, $(basename "$d"): database $(du -h "$d/bank.db" | cut -f1)"
  run "$d"
  run "$d"
done
"$bin/bank" verify-audit --config "$filled/bank.json"
