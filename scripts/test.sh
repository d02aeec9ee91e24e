#!/usr/bin/env bash
# The full test suite: installs what the tests need, builds every binary the
# multi-process tests start, then runs formatting, lint and all tests.
# Usage: scripts/test.sh            (CI runs exactly this)
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use (client tools); installed once.
need_pkgs=()
for tool in redis-cli:redis-tools python3:python3 :python3-venv; do
  bin=${tool%%:*}; pkg=${tool##*:}
  if [ -z "$bin" ]; then
    # No command to look for: a package checked by what it provides.
    python3 -c 'import ensurepip' >/dev/null 2>&1 || need_pkgs+=("$pkg")
    continue
  fi
  command -v "$bin" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "== installing ${need_pkgs[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== build binaries used by multi-process tests"
cargo build --workspace --bins

echo "== cargo test"
cargo test --workspace -- --test-threads 2

echo "== redis-py end-to-end suite (3-node cluster)"
e2e/redis/run.sh

echo "== Redis's own Tcl test suite against a 3-node cluster (scripts/redis-compat)"
# Fails if the number of passing tests drops below the floor recorded in
# scripts/redis-compat.reference; rewrites docs/redis-compat.md.
ELASTICKV_BIN=${ELASTICKV_BIN:-${CARGO_TARGET_DIR:-target}/debug/elastickv} \
  scripts/redis-compat --check
