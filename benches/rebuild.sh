#!/usr/bin/env bash
# Rebuild after editing one handler, in one run: a service laid out by `pactum new` (the
# generated code in a crate of its own) against the example (generated code and handlers in
# one crate). Both build in this workspace's target dir, in the dev profile, with cargo's
# defaults (incremental compilation on, as on a developer's machine).
#
#   bash benches/rebuild.sh                 # 5 edits each
#   RUNS=9 bash benches/rebuild.sh
#   INCREMENTAL=0 bash benches/rebuild.sh   # as CI builds (CARGO_INCREMENTAL=0)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${RUNS:-5}
example=generated-example/src/services/orders.rs
scratch=$(mktemp -d)
cp "$example" "$scratch/example-orders.rs"
restore() {
  cp "$scratch/example-orders.rs" "$root/$example"
  rm -rf "$scratch"
}
trap restore EXIT
export CARGO_TARGET_DIR="$root/target"
if [ -n "${INCREMENTAL:-}" ]; then export CARGO_INCREMENTAL="$INCREMENTAL"; else unset CARGO_INCREMENTAL; fi

cargo build -q -p pactum-codegen --bin pactum
"$CARGO_TARGET_DIR/debug/pactum" new "$scratch/orders" \
  --contract contracts/orders/v1.yaml --contract contracts/orders/v2.yaml \
  --pactum-path runtime > /dev/null
cp Cargo.lock "$scratch/orders/"
handler="$scratch/orders/service/src/handlers/orders_v1.rs"

# Warm both, so each timed build is the edit's alone.
(cd "$scratch/orders" && cargo build -q)
cargo build -q -p generated-example

ms() { echo $(( $(date +%s%N) / 1000000 )); }
timed() {
  local start
  start=$(ms)
  "$@" > /dev/null 2>&1
  echo $(( $(ms) - start ))
}
edit() { printf '\n// edited %s\n' "$(date +%s%N)" >> "$1"; }

scaffold=()
whole=()
for i in $(seq 1 "$runs"); do
  edit "$handler"
  scaffold+=("$(timed bash -c "cd '$scratch/orders' && cargo build -q")")
  edit "$root/$example"
  whole+=("$(timed cargo build -q -p generated-example)")
  echo "edit $i: pactum new service ${scaffold[-1]} ms, example ${whole[-1]} ms"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
s=$(median "${scaffold[@]}")
w=$(median "${whole[@]}")
echo "median: pactum new service ${s} ms (recompiles the service crate), example ${w} ms (recompiles its generated code too)"
awk -v s="$s" -v w="$w" 'BEGIN { printf "ratio pactum new / example: %.2f\n", s / w }'
