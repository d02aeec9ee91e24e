#!/usr/bin/env bash
# Build Elastickv and start the local 3-node demo cluster (Ctrl-C stops it).
# Usage: scripts/demo.sh [--raftDataDir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin elastickv --bin elastickv-cli
exec target/release/elastickv demo "$@"
