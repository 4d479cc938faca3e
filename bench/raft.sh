#!/usr/bin/env bash
# raft.sh - commit latency and write rate of the Raft session database (no root needed).
#
# Builds gh-raft-bench (crate bench/, gatehouse-bench) in release and runs it: three SessionStores (openraft + sled, cluster gRPC
# with mutual TLS on 127.0.0.1) in one process, Login/Attach commands proposed on the leader and
# through a follower. The markdown report goes to stdout and to bench/results/raft-<stamp>.md;
# progress to stderr.
#
# Knobs (env):
#   BUILD=1                 run the cargo build first (0: use the binary as is)
#   RAFT_BENCH_BIN          binary (default $CARGO_TARGET_DIR or target, /release/gh-raft-bench)
#   RAFT_BENCH_DIR          where the nodes' temporary data dirs go (default: target/ of the repo,
#                           i.e. the disk you build on; sled fsyncs every append, so tmpfs would
#                           flatter the figures)
#   RAFT_BENCH_TIMEOUT=1500 seconds allowed for the run
#   RAFT_BENCH_LAT_N=2000 RAFT_BENCH_N=20000 RAFT_BENCH_CONC="1 16 64 256"
#   RAFT_BENCH_BUDGET_SECS=30 RAFT_BENCH_RESUME_M=1000     passed through to gh-raft-bench
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BIN=${RAFT_BENCH_BIN:-$TARGET/release/gh-raft-bench}
export RAFT_BENCH_DIR=${RAFT_BENCH_DIR:-$TARGET}
TIMEOUT=${RAFT_BENCH_TIMEOUT:-1500}

if [ "${BUILD:-1}" = 1 ]; then
    echo "raft.sh: cargo build --release -p gatehouse-bench --bin gh-raft-bench" >&2
    (cd "$REPO" && cargo build --release -p gatehouse-bench --bin gh-raft-bench) >&2
fi
[ -x "$BIN" ] || { echo "raft.sh: $BIN not found (BUILD=1 builds it)" >&2; exit 1; }

mkdir -p "$HERE/results" "$RAFT_BENCH_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$HERE/results/raft-$STAMP.md
REV=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$REPO" && git status --porcelain 2>/dev/null | grep -q . && echo " (working tree modified)" || true)

set +e
{
    echo "<!-- bench/raft.sh $STAMP, commit $REV$DIRTY -->"
    # timeout: the binary bounds itself too; this is the outer guard. SIGINT first, then KILL.
    timeout -k 10 "$TIMEOUT" "$BIN"
} | tee "$OUT.partial"
rc=${PIPESTATUS[0]}
set -e
mv "$OUT.partial" "$OUT"
echo "raft.sh: report saved to $OUT (exit $rc)" >&2
exit "$rc"
