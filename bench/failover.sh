#!/usr/bin/env bash
# failover.sh - client blackout, lost sessions and re-logins when a slot owner dies (needs root).
#
# Builds the workspace binaries (gh-failover-bench is in the crate bench/, gatehouse-bench;
# gh-fleet in tests/, gatehousectl in ctl/), then runs gh-failover-bench as root: a 3-node cluster in its
# own network namespaces, gh-fleet holding many CSTP sessions on a slot address, and
# `gatehousectl drill --kill` crashing the slot's owner (phase A: 20 drills, 100 sessions;
# phases B and C: one drill with 1,000 sessions, owner not / owner = Raft leader). The markdown report goes to stdout and to
# bench/results/failover-<stamp>.md; progress to stderr. See bench/README.md "Failover".
#
# Knobs (env):
#   PROFILE=release|debug   build profile (default release)
#   BUILD=1                 run `cargo build --bins` first (0: use the binaries as they are)
#   CARGO_TARGET_DIR        where the binaries are (default <repo>/target)
#   FAILOVER_TIMEOUT=3600   seconds allowed for the run (SIGINT, then KILL 60 s later)
#   BENCH_DRILLS=20 BENCH_SESSIONS=100 BENCH_BIG=1000 BENCH_BIG_SLOT=auto BENCH_CONC=16
#   BENCH_SETTLE_MS=2000 BENCH_FLUSH_TCP=1 BENCH_PHASES="A B C" BENCH_LOG_DIR
#   BENCH_FAULT=crash|kill9|stop  the fault each drill injects (see gh-failover-bench)
#                           passed through to gh-failover-bench (see its header)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PROFILE=${PROFILE:-release}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BIN=$TARGET/$PROFILE/gh-failover-bench
TIMEOUT=${FAILOVER_TIMEOUT:-3600}

if [ "${BUILD:-1}" = 1 ]; then
    flag=--release
    [ "$PROFILE" = debug ] && flag=
    echo "failover.sh: cargo build $flag --bins" >&2
    # As the invoking user when run through sudo, so target/ stays theirs.
    if [ "$(id -u)" = 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        (cd "$REPO" && sudo -u "$SUDO_USER" env "PATH=$PATH" CARGO_TARGET_DIR="$TARGET" \
            cargo build $flag --bins) >&2
    else
        (cd "$REPO" && CARGO_TARGET_DIR="$TARGET" cargo build $flag --bins) >&2
    fi
fi
for b in gh-failover-bench gh-fleet gatehouse gatehousectl; do
    [ -x "$TARGET/$PROFILE/$b" ] || { echo "failover.sh: $TARGET/$PROFILE/$b not found (BUILD=1 builds it)" >&2; exit 1; }
done

SUDO=
[ "$(id -u)" = 0 ] || SUDO="sudo -E"

mkdir -p "$HERE/results"
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$HERE/results/failover-$STAMP.md
REV=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$REPO" && git status --porcelain 2>/dev/null | grep -q . && echo " (working tree modified)" || true)

set +e
{
    echo "<!-- bench/failover.sh $STAMP, commit $REV$DIRTY, profile $PROFILE, nproc $(nproc), $(uname -r) -->"
    # The binary finds gh-fleet, gatehouse and gatehousectl next to itself. It bounds every
    # wait and cleans up on SIGINT; timeout is the outer guard.
    $SUDO timeout -s INT -k 60 "$TIMEOUT" "$BIN"
} | tee "$OUT.partial"
rc=${PIPESTATUS[0]}
set -e
mv "$OUT.partial" "$OUT"
echo "failover.sh: report saved to $OUT (exit $rc)" >&2
exit "$rc"
