#!/usr/bin/env bash
# Runs Gatehouse locally with embedded defaults and prints how to connect with openconnect.
# Needs root (network namespaces, tun devices).
#
#   sudo scripts/demo.sh            # a 3-node cluster (one slot per node) and a director, in
#                                   # network namespaces of their own, with a LAN host behind
#                                   # them; self-signed certificates, sled data directories, a
#                                   # demo user. Ctrl-C removes everything (tests/src/bin/gh-demo-cluster.rs)
#   sudo scripts/demo.sh --single   # one node on 127.0.0.1:8443 (./gatehouse-demo, user demo)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "the demo creates network namespaces and tun devices: run as root (sudo $0)" >&2
  exit 1
fi
bash scripts/install-deps.sh
cargo build --release --bins
case "${1:-}" in
  --single)
    exec target/release/gatehouse demo --dir gatehouse-demo --listen "${GATEHOUSE_LISTEN:-127.0.0.1:8443}"
    ;;
  "")
    exec target/release/gh-demo-cluster
    ;;
  *)
    echo "usage: $0 [--single]" >&2
    exit 2
    ;;
esac
