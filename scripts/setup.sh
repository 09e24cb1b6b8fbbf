#!/usr/bin/env bash
# Installs what SIVO needs on Debian 12 (or Ubuntu), only if it is missing.
# Sourced by scripts/run.sh and scripts/test.sh; safe to run again.
set -euo pipefail

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: not root and no sudo; install the packages listed in scripts/setup.sh by hand" >&2
  fi
fi

# Debian packages: PostgreSQL server binaries for the embedded database, a C toolchain and cmake
# for crates that build C code, and the real peers the test suite talks to.
packages=(postgresql build-essential cmake pkg-config ca-certificates curl)
if [[ "${SIVO_SETUP_TEST_TOOLS:-0}" == 1 ]]; then
  packages+=(sip-tester baresip-core)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's postgresql package starts a system cluster on port 5432; SIVO does not need it (it runs
# its own private cluster on a Unix socket), so it is left as the package configured it.

if ! command -v cargo >/dev/null; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing the Rust toolchain with rustup (Debian's rustc is too old for edition 2024)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
