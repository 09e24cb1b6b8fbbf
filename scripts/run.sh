#!/usr/bin/env bash
# One command: install what is missing, build SIVO, and run it (Ctrl-C stops it and its database).
# Extra arguments go to `sivo serve`, e.g. scripts/run.sh --http-addr 0.0.0.0:8080
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --locked --bin sivo
exec ./target/release/sivo serve "$@"
