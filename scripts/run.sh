#!/usr/bin/env bash
# One command: install what is missing, build SIVO, and run it (Ctrl-C stops it and its database).
# Extra arguments go to `sivo serve`, e.g. scripts/run.sh --http-addr 0.0.0.0:8080
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --locked --bin sivo

# The web app (served at /). It needs Node.js >= 20.19 with npm; without it SIVO serves the API only.
if command -v node >/dev/null && node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  (cd web && npm ci --no-progress --no-fund --no-audit && npx vite build --logLevel warn)
else
  echo "run: Node.js >= 20.19 not found; serving the API only (install Node.js 20+ to get the web app)" >&2
fi
exec ./target/release/sivo serve "$@"
