#!/usr/bin/env bash
# install-deps.sh - install the system packages the end-to-end tests (crate gatehouse-tests)
# and the build need, on Debian 12. Idempotent: runs `apt-get update` and `apt-get install`
# only when a package is missing. Must run as root.
#
#   sudo scripts/install-deps.sh                 # test + build dependencies
#   sudo WITH_OCSERV=1 scripts/install-deps.sh   # also ocserv (baseline benchmarks only)
set -euo pipefail

PKGS=(openconnect vpnc-scripts iperf3 iproute2 iptables nftables faketime iputils-ping iputils-arping procps
      protobuf-compiler ca-certificates openssl jq busybox-static)
# ocserv is the reference headend for bench/ only; gnutls-bin provides certtool for its PKI.
if [ "${WITH_OCSERV:-0}" = 1 ]; then
  PKGS+=(ocserv gnutls-bin)
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-deps.sh: must run as root (apt-get install)" >&2
  exit 1
fi

installed() { # pkg -> 0 when dpkg reports it fully installed
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for p in "${PKGS[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" = 0 ]; then
  echo "install-deps.sh: all packages already installed: ${PKGS[*]}"
  exit 0
fi

echo "install-deps.sh: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"

still=()
for p in "${missing[@]}"; do
  installed "$p" || still+=("$p")
done
if [ "${#still[@]}" != 0 ]; then
  echo "install-deps.sh: failed to install: ${still[*]}" >&2
  exit 1
fi
echo "install-deps.sh: installed: ${missing[*]}"
