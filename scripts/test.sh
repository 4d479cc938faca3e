#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs, checks formatting and lints, builds every
# binary, runs every test. The end-to-end suites need root (network namespaces, tun); under
# CI=true they fail instead of skipping when that is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
  bash scripts/install-deps.sh
else
  echo "not root: skipping scripts/install-deps.sh; end-to-end tests will be skipped (CI fails instead)" >&2
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build (binaries used by the end-to-end tests)"
cargo build --workspace --bins
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --test-threads 4
else
  cargo test --workspace --no-fail-fast
fi
