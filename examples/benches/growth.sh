#!/usr/bin/env bash
# The complete flow's server CPU on a fresh store and on a store holding
# PREFILL flows' worth of rows (#15 on SQLite, #17 on PostgreSQL; numbers
# in BENCHMARKS.md).
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
#
# With GROWTH_POSTGRES=postgres://USER@HOST:PORT (no database name) the
# store is PostgreSQL: data directories /tmp/fapi-growth-pg-ALG-{fresh,filled}
# and databases fapi_growth_<alg>_{fresh,filled}, created (and the fresh
# one dropped first) with psql. The fill commits asynchronously (its
# durability does not matter); both measured runs use the server's
# default synchronous commit.
set -euo pipefail
alg=${1:?ALG}
fill=${2:?PREFILL}
flows=${3:-2000}
bin=${BIN:-target/release}
pg=${GROWTH_POSTGRES:-}
prefix=/tmp/fapi-growth${pg:+-pg}-$alg
fresh=$prefix-fresh
filled=$prefix-filled
lower=$(echo "$alg" | tr '[:upper:]' '[:lower:]')

# the database flags for data directory $1 (none on SQLite)
database() {
  [ -z "$pg" ] || echo "--database $pg/fapi_growth_${lower}_${1##*-}"
}

setup() {
  rm -rf "$1"
  if [ -n "$pg" ]; then
    local name=fapi_growth_${lower}_${1##*-}
    psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name"
  fi
  "$bin/bank" init --data-dir "$1" --signing-alg "$alg" >/dev/null
  # shellcheck disable=SC2046
  "$bin/bank" tpp onboard --config "$1/bank.json" $(database "$1") \
    --software-statement "$1/tpp-a.ssa.jwt" --certificate "$1/tpp-a.pem" >/dev/null
}

if [ ! -f "$filled/prefilled-$fill" ]; then
  setup "$filled"
  # the fill's durability does not matter: on PostgreSQL it commits
  # without waiting for the WAL flush, and the setting is reset before
  # anything is measured
  [ -z "$pg" ] || psql "$pg/postgres" -qc "ALTER DATABASE fapi_growth_${lower}_filled SET synchronous_commit = off"
  # shellcheck disable=SC2046
  "$bin/bank" prefill --config "$filled/bank.json" $(database "$filled") --flows "$fill" 2>/dev/null
  [ -z "$pg" ] || psql "$pg/postgres" -qc "ALTER DATABASE fapi_growth_${lower}_filled RESET synchronous_commit" \
    -c "CHECKPOINT"
  touch "$filled/prefilled-$fill"
fi
[ "${GROWTH_PREPARE_ONLY:-0}" = 1 ] && exit 0
setup "$fresh"

size() {
  if [ -n "$pg" ]; then
    psql "$pg/postgres" -Atc "SELECT pg_size_pretty(pg_database_size('fapi_growth_${lower}_${1##*-}'))"
  else
    du -h "$1/bank.db" | cut -f1
  fi
}

run() {
  # shellcheck disable=SC2046
  RUST_LOG=warn "$bin/bank" serve --config "$1/bank.json" $(database "$1") \
    --rate-limit 0 --customer-rate-limit 0 >>"$1/serve.log" 2>&1 &
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
  echo "== $alg, $(basename "$d"): database $(size "$d")"
  run "$d"
  run "$d"
done
# shellcheck disable=SC2046
"$bin/bank" verify-audit --config "$filled/bank.json" $(database "$filled")
