#!/usr/bin/env bash
# One command: install what is missing, then run every check CI runs: formatting, lints, and the
# whole test suite (unit, real PostgreSQL, the real binary end to end, the web app in a real browser).
set -euo pipefail
cd "$(dirname "$0")/.."
export SIVO_SETUP_TEST_TOOLS=1
source scripts/setup.sh

# Keep test output readable and builds lean on small machines.
export CARGO_TERM_COLOR=never RUST_BACKTRACE=1
export CARGO_INCREMENTAL=0

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
scripts/fuzz.sh
echo "== web app (types, lint, unit tests, build, Playwright against a real sivo)"
scripts/test-web.sh
