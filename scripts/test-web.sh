#!/usr/bin/env bash
# The web app's checks, end to end: API types in step with the backend, types, lint, unit tests,
# production build, and Playwright against a real `sivo serve` with Debian's chromium.
# Installs what is missing (Debian 12, as root or with sudo); safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

# PostgreSQL server binaries (the embedded database), a C toolchain and Rust, as scripts/run.sh.
source scripts/setup.sh

SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then SUDO="sudo"; fi

# Debian's chromium for the browser tests; Playwright never downloads a browser here.
if [[ ! -x /usr/bin/chromium ]]; then
  echo "test-web: installing chromium"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
fi

# Node 20.19+ (Vite 8). Debian 12's own nodejs is 18, too old: say so rather than guess.
if ! command -v node >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "test-web: Node.js >= 20.19 and npm are required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

export CARGO_TERM_COLOR=never
echo "== cargo build --bin sivo"
cargo build --bin sivo --locked

cd web
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_config_fund=false npm_config_audit=false
echo "== npm ci"
npm ci --no-progress

echo "== api:check (OpenAPI document and generated types)"
if [[ -x "$repo/target/debug/sivo" ]]; then
  npm run --silent api:check
else
  echo "test-web: NOTICE: target/debug/sivo is missing; skipping the API drift check"
fi

echo "== tsc --noEmit"
npx tsc --noEmit
echo "== eslint"
npx eslint --max-warnings=0 .
echo "== vitest"
npx vitest run
echo "== vite build"
npx vite build --logLevel warn
echo "== playwright (real sivo serve, /usr/bin/chromium)"
npx playwright test
