#!/usr/bin/env bash
# Cold build time and crate count of a REST-only service, against pactum with only its `rest`
# feature and, as the baseline in the same run, with every feature (what every service
# compiled before the runtime had features). The service is codegen/tests/rest-only: the
# example contracts generated with `parts: { grpc: false, messaging: false }`.
#
#   bash benches/build-time.sh        # prints one line per variant, then the ratio
#
# Each variant builds in a fresh target directory (dev profile, as `cargo build`), so every
# dependency is compiled; sources come from the local registry cache.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0

measure() {
  local name=$1; shift
  local dir
  dir=$(mktemp -d)
  local start end crates
  start=$(date +%s.%N)
  cargo build --quiet -p pactum-test-rest-only --target-dir "$dir" "$@"
  end=$(date +%s.%N)
  crates=$(cargo tree -p pactum-test-rest-only "$@" -e normal,build --prefix none \
    | sed 's/ (.*//' | sort -u | wc -l)
  rm -rf "$dir"
  secs=$(echo "$end - $start" | bc)
  printf '%-13s %7.1f s  %4d crates\n' "$name" "$secs" "$crates"
  eval "${name//-/_}_secs=$secs"
}

echo "machine: $(nproc) cores, $(rustc --version)"
measure all-features --features all-features
measure rest-only
printf 'ratio (rest-only / all-features): %.2f\n' "$(echo "$rest_only_secs / $all_features_secs" | bc -l)"
