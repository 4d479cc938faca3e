#!/usr/bin/env bash
# Runs a local Gatehouse node with embedded defaults (self-signed certificate, sled in
# ./gatehouse-demo/data, user demo/gatehouse-demo) and prints how to connect with openconnect.
# Needs root for the tun device.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "the node creates a tun device: run as root (sudo $0)" >&2
  exit 1
fi
bash scripts/install-deps.sh
cargo build --release --bins
exec target/release/gatehouse demo --dir gatehouse-demo --listen "${GATEHOUSE_LISTEN:-127.0.0.1:8443}"
