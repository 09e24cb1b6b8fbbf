#!/usr/bin/env bash
# Fuzzes the SIP parser for a bounded time: each cargo-fuzz target in crates/sip/fuzz
# (parse_datagram, framer, digest), seeded from its committed corpus (corpus/<target>/rfc*).
# Exits non-zero and names the crashing input when a target panics (including a failed round-trip
# assertion or an integer overflow), hangs or runs out of memory.
#
#   scripts/fuzz.sh                                   every target, FUZZ_SECONDS (default 30) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh parse_datagram   one target, longer
#
# Works on the stable toolchain: cargo-fuzz needs nightly only for sanitizers (-Zsanitizer). With
# `--sanitizer none` it builds with stable flags alone (-Cpasses=sancov-module, -Cllvm-args=…
# for coverage and comparison tracing, -Cdebug-assertions, --cfg fuzzing), so no RUSTC_BOOTSTRAP.
# The sip crate forbids unsafe code, so AddressSanitizer would find little that a panic does not.
set -euo pipefail
cd "$(dirname "$0")/../crates/sip/fuzz"
echo "== fuzz the SIP parser (cargo-fuzz, stable, ${FUZZ_SECONDS:-30} s a target)"

cargo_fuzz_version=0.13.2
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
  echo "fuzz: installing cargo-fuzz $cargo_fuzz_version"
  cargo install --locked --version "$cargo_fuzz_version" cargo-fuzz
fi

secs=${FUZZ_SECONDS:-30}
if (($#)); then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
flags=(--sanitizer none --target-dir "$PWD/target")

# cargo-fuzz has no --locked: check the committed Cargo.lock is current first, so the build
# below uses exactly it.
cargo fetch --locked
cargo fuzz build "${flags[@]}"

logs=target/fuzz-logs
mkdir -p "$logs"
failed=()
for t in "${targets[@]}"; do
  # New inputs go to a scratch corpus (kept between local runs, never committed); the committed
  # seeds are only read.
  mkdir -p "target/corpus/$t" "corpus/$t"
  log="$logs/$t.log"
  if cargo fuzz run "${flags[@]}" "$t" "target/corpus/$t" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -n 1 || true)
    echo "fuzz: $t ok: ${runs:-finished} (corpus $(ls "target/corpus/$t" | wc -l) generated + $(ls "corpus/$t" | wc -l) seeds)"
  else
    tail -n 60 "$log"
    artifact=$(grep -o 'Test unit written to .*' "$log" | tail -n 1 | sed 's/^Test unit written to //' || true)
    echo "fuzz: $t FAILED; crashing input: ${artifact:-none written, see $PWD/$log}" >&2
    if [[ -n "$artifact" ]]; then
      echo "fuzz: reproduce with: cd crates/sip/fuzz && cargo fuzz run --sanitizer none $t $artifact" >&2
    fi
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: crashes in ${failed[*]}" >&2
  exit 1
fi
