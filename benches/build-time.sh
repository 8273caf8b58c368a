#!/usr/bin/env bash
# Cold build time and crate count of a REST-only service. The service is
# codegen/tests/rest-only: the example contracts generated with
# `parts: { grpc: false, messaging: false }`, built against pactum with only its `rest`
# feature. It is measured against, in the same run:
#
#   before        the same REST-only service at commit 8735b0f, before the runtime had
#                 features: that commit's builder output (`.grpc(false).messaging(false)`) of
#                 the same contracts, in a scratch worktree, built against that commit's pactum;
#   all-features  today's pactum with every feature on.
#
#   bash benches/build-time.sh          # before, rest-only, all-features, then the ratios
#   bash benches/build-time.sh --quick  # rest-only and all-features only (no worktree)
#
# Each variant builds in a fresh target directory (dev profile, as `cargo build`, with
# CARGO_INCREMENTAL=0), so every dependency is compiled; sources come from the registry cache.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0
BEFORE_COMMIT=8735b0f
root=$PWD

measure() {
  local name=$1 dir=$2; shift 2
  local target start end crates secs
  target=$(mktemp -d)
  start=$(date +%s.%N)
  (cd "$dir" && cargo build --quiet -p pactum-test-rest-only --target-dir "$target" "$@")
  end=$(date +%s.%N)
  crates=$(cd "$dir" && cargo tree -p pactum-test-rest-only "$@" -e normal,build --prefix none \
    | sed 's/ (.*//' | sort -u | wc -l)
  rm -rf "$target"
  secs=$(echo "$end - $start" | bc)
  printf '%-13s %7.1f s  %4d crates\n' "$name" "$secs" "$crates"
  eval "${name//-/_}_secs=$secs"
}

# The before service: a worktree of $BEFORE_COMMIT with two members added, `restgen` (runs
# that commit's builder once, untimed) and `restonly` (includes what it wrote).
make_before() {
  local wt=$1
  git -C "$root" worktree add --detach --quiet "$wt" "$BEFORE_COMMIT"
  mkdir -p "$wt/restgen/src" "$wt/restonly/src"
  cat > "$wt/restgen/Cargo.toml" <<'TOML'
[package]
name = "restgen"
version = "0.1.0"
edition = "2021"
publish = false
[dependencies]
pactum-codegen = { path = "../codegen" }
TOML
  cat > "$wt/restgen/src/main.rs" <<'RS'
fn main() {
    pactum_codegen::Builder::new()
        .contracts("contracts")
        .out_dir("restonly/src/generated")
        .targets(&[pactum_codegen::builder::Target::Rust])
        .grpc(false)
        .messaging(false)
        .cargo_metadata(false)
        .compile()
        .expect("the example contracts generate");
}
RS
  cat > "$wt/restonly/Cargo.toml" <<'TOML'
[package]
name = "pactum-test-rest-only"
version = "0.1.0"
edition = "2021"
publish = false
[dependencies]
pactum = { path = "../runtime" }
TOML
  echo 'include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/generated/pactum.rs"));' \
    > "$wt/restonly/src/lib.rs"
  sed -i 's|^members = \[|members = ["restgen", "restonly", |' "$wt/Cargo.toml"
  (cd "$wt" && cargo run --quiet -p restgen --target-dir "$wt/target-gen")
  rm -rf "$wt/target-gen"
}

echo "machine: $(nproc) cores, $(rustc --version)"
if [[ "${1:-}" != --quick ]]; then
  wt=$(mktemp -d)/before
  trap 'git -C "$root" worktree remove --force "$wt" 2>/dev/null || true' EXIT
  make_before "$wt"
  measure before "$wt"
fi
measure rest-only "$root"
measure all-features "$root" --features all-features
if [[ -n "${before_secs:-}" ]]; then
  printf 'ratio (rest-only / before): %.2f\n' "$(echo "$rest_only_secs / $before_secs" | bc -l)"
fi
printf 'ratio (rest-only / all-features): %.2f\n' "$(echo "$rest_only_secs / $all_features_secs" | bc -l)"
