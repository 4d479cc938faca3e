#!/usr/bin/env bash
# run.sh - Gatehouse benchmark (run as root: sudo bash bench/run.sh).
#
#  a. Throughput, Gatehouse vs ocserv, same session: the ocserv baseline harness
#     (OCB_SCRIPT, default ../shared/bench/ocserv-baseline/run-baseline.sh relative to the repo)
#     runs PHASES=tput TPUT_MODES=cstp twice: once with its default server (ocserv 1.1.6), once
#     with SERVER_CMD=bench/gatehouse-server.sh, on the identical namespace topology, PKI and
#     openconnect client. Reports the median up/down Mb/s, the ratio gatehouse/ocserv and server
#     CPU-s per GB.
#  b. Resume and login rates of a Gatehouse node, measured with gh-cstp-probe over a small
#     namespace topology of our own (ghb-cli 10.98.0.2 ==veth== ghb-gw 10.98.0.1).
#
# Prints a markdown table on stdout and saves it as bench/results/<stamp>.md; progress and
# diagnostics go to stderr. Everything runs inside network namespaces this script (or the
# harness) creates and deletes; all of it is torn down on exit, including on Ctrl-C.
#
# Knobs (env):
#   PARTS="tput rates"     which parts to run
#   OCB_SCRIPT             path of run-baseline.sh
#   OCB_BASE               harness work/results dir (default /tmp/ocbench, the harness default)
#   TPUT_ROUNDS=3 TPUT_SECS=10   harness throughput rounds and seconds per iperf3 run
#   TPUT_TIMEOUT=1200      seconds allowed per harness run
#   GATEHOUSE_MTU          MTU for Gatehouse in the throughput part (default: the MTU ocserv
#                          gave openconnect in the same run, read from the client log; 1434 if
#                          not found)
#   RESUME_N=2000 RESUME_CONC="8 32" LOGIN_N=200 LOGIN_CONC="8"   rate loops
#   RATE_TIMEOUT=300       seconds allowed per rate loop
#   RATE_RUST_LOG=info     node log filter during the rate loops (what operators run)
#   RESUME_GOAL=2000       resumes/s goal shown in the table
#   BUILD=1                run `cargo build --release --bins` first (0: use target/release as is)
#   INSTALL=1              run `WITH_OCSERV=1 scripts/install-deps.sh` first (0: skip)
#   GATEHOUSE_BIN / GATEHOUSECTL_BIN / PROBE_BIN   binaries (default target/release/...)
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PARTS=${PARTS:-"tput rates"}
OCB_SCRIPT=${OCB_SCRIPT:-$REPO/../shared/bench/ocserv-baseline/run-baseline.sh}
export OCB_BASE=${OCB_BASE:-/tmp/ocbench}
TPUT_ROUNDS=${TPUT_ROUNDS:-3}
TPUT_SECS=${TPUT_SECS:-10}
TPUT_TIMEOUT=${TPUT_TIMEOUT:-1200}
RESUME_N=${RESUME_N:-2000}
RESUME_CONC=${RESUME_CONC:-"8 32"}
LOGIN_N=${LOGIN_N:-200}
LOGIN_CONC=${LOGIN_CONC:-8}
RATE_TIMEOUT=${RATE_TIMEOUT:-300}
RATE_RUST_LOG=${RATE_RUST_LOG:-info,openraft=warn,sled=warn}
RESUME_GOAL=${RESUME_GOAL:-2000}
BUILD=${BUILD:-1}
INSTALL=${INSTALL:-1}
GATEHOUSE_BIN=${GATEHOUSE_BIN:-$REPO/target/release/gatehouse}
GATEHOUSECTL_BIN=${GATEHOUSECTL_BIN:-$(dirname "$GATEHOUSE_BIN")/gatehousectl}
PROBE_BIN=${PROBE_BIN:-$(dirname "$GATEHOUSE_BIN")/gh-cstp-probe}
export GATEHOUSE_BIN GATEHOUSECTL_BIN
PY=/usr/bin/python3

# our own rate-test topology
NS_GW=ghb-gw NS_CLI=ghb-cli GW_IP=10.98.0.1 CLI_IP=10.98.0.2
RATE_POOL=10.200.0.0/16 RATE_ROUTE=10.201.0.0/24

STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$HERE/results
OUTMD=$RESULTS/$STAMP.md
log() { printf '[%(%H:%M:%S)T] run.sh: %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, tun device): sudo bash bench/run.sh"
[ -x "$PY" ] || die "missing $PY"

WORK=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
CHILD=""      # harness (timeout) pid while it runs
GH_PID=""     # gatehouse node of the rate part

rate_teardown() {
  local ns p
  [ -n "$GH_PID" ] && kill -TERM "$GH_PID" 2>/dev/null
  for ns in $NS_CLI $NS_GW; do
    ip netns list 2>/dev/null | grep -qw "^$ns" || continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$p" 2>/dev/null; done
  done
  local i; for i in $(seq 20); do
    [ -z "$(for ns in $NS_CLI $NS_GW; do ip netns pids "$ns" 2>/dev/null; done)" ] && break; sleep 0.25
  done
  for ns in $NS_CLI $NS_GW; do
    ip netns list 2>/dev/null | grep -qw "^$ns" || continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  [ -n "$GH_PID" ] && wait "$GH_PID" 2>/dev/null
  GH_PID=""
}
cleanup() {
  if [ -n "$CHILD" ]; then   # the harness tears its own namespaces down on SIGTERM
    kill -TERM "$CHILD" 2>/dev/null; wait "$CHILD" 2>/dev/null; CHILD=""
  fi
  rate_teardown
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- prerequisites
if [ "$INSTALL" = 1 ]; then
  WITH_OCSERV=1 bash "$REPO/scripts/install-deps.sh" >&2 || die "scripts/install-deps.sh failed"
fi
if [ "$BUILD" = 1 ]; then
  CARGO=$(command -v cargo || true)
  [ -z "$CARGO" ] && [ -n "${SUDO_USER:-}" ] && CARGO=$(eval echo "~$SUDO_USER")/.cargo/bin/cargo
  [ -z "$CARGO" ] || [ ! -x "$CARGO" ] && CARGO=$HOME/.cargo/bin/cargo
  if [ -x "$CARGO" ]; then
    log "cargo build --release --bins (waits if another build holds the lock)"
    (cd "$REPO" && "$CARGO" build --release --bins) >&2 || die "cargo build --release --bins failed"
  else
    log "cargo not found; using existing binaries"
  fi
fi
for b in "$GATEHOUSE_BIN" "$GATEHOUSECTL_BIN" "$PROBE_BIN"; do
  [ -x "$b" ] || die "$b missing: run 'cargo build --release --bins' in $REPO"
done
"$GATEHOUSECTL_BIN" user add --help >/dev/null 2>&1 \
  || die "$GATEHOUSECTL_BIN lacks 'user add' (needed to create the users file); rebuild it"

# baseline harness tools: install-deps.sh covers ocserv/openconnect/iperf3/certtool; the harness
# also needs jq, bc, ... — let it apt-get them itself (OCB_INSTALL=1) only when one is missing.
OCB_INSTALL=0
if [[ " $PARTS " == *" tput "* ]]; then
  [ -r "$OCB_SCRIPT" ] || die "baseline harness not found at $OCB_SCRIPT (set OCB_SCRIPT)"
  for t in ocserv ocpasswd occtl openconnect iperf3 certtool openssl ip iptables ping jq bc ss; do
    command -v "$t" >/dev/null || { OCB_INSTALL=1; log "missing $t: the harness will install its tools (OCB_INSTALL=1)"; break; }
  done
fi

mkdir -p "$RESULTS"
MACHINE="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc) (nproc=$(nproc)), $(free -m | awk '/Mem:/{print $2" MiB"}'), kernel $(uname -r)"
log "machine: $MACHINE"
log "work dir $WORK; results -> $OUTMD"

# ---------------------------------------------------------------- a. throughput
TPUT_MD=""
HRES=""
run_harness() { # label [env assignments...] -> sets HRES to the harness result dir
  # (not in a $(...) subshell: CHILD must be visible to the EXIT trap)
  local label=$1; shift
  local lg=$WORK/harness-$label.log
  log "throughput: harness run '$label' (PHASES=tput TPUT_MODES=cstp TPUT_ROUNDS=$TPUT_ROUNDS TPUT_SECS=$TPUT_SECS), log $lg"
  env "$@" PHASES=tput TPUT_MODES=cstp TPUT_ROUNDS="$TPUT_ROUNDS" TPUT_SECS="$TPUT_SECS" \
      OCB_INSTALL="$OCB_INSTALL" OCB_BASE="$OCB_BASE" \
      timeout -k 20 "$TPUT_TIMEOUT" bash "$OCB_SCRIPT" > "$lg" 2>&1 < /dev/null &
  CHILD=$!
  wait "$CHILD"; local rc=$?; CHILD=""
  local res; res=$(sed -n 's/.*results -> \(.*\)$/\1/p' "$lg" | head -1)
  [ $rc = 0 ] && [ -n "$res" ] && [ -s "$res/measurements.csv" ] \
    || { tail -20 "$lg" >&2; die "harness run '$label' failed (rc=$rc), see above"; }
  cp "$lg" "$res/run-sh-harness.log" 2>/dev/null
  HRES=$res
}
tput_part() {
  local res_oc res_gh mtu
  run_harness ocserv; res_oc=$HRES
  log "ocserv results: $res_oc"
  # the tunnel MTU ocserv gave openconnect (server's X-CSTP-MTU header in the verbose log)
  mtu=$(grep -ho 'X-CSTP-MTU: [0-9]*' "$res_oc"/raw/tput-cstp-*.oc.log 2>/dev/null | awk '{print $2}' | sort | uniq -c | sort -rn | awk 'NR==1{print $2}')
  GH_MTU=${GATEHOUSE_MTU:-${mtu:-1434}}
  log "ocserv's CSTP MTU: ${mtu:-not found}; Gatehouse runs with mtu=$GH_MTU"
  run_harness gatehouse SERVER_CMD="bash $HERE/gatehouse-server.sh" SERVER_COMM_REGEX='^gatehouse' \
    SERVER_WORKER_COMM= GATEHOUSE_MTU="$GH_MTU" GATEHOUSE_WORKDIR="$WORK/tput-node"
  res_gh=$HRES
  log "gatehouse results: $res_gh"
  grep -q 'server under test: bash .*gatehouse-server.sh' "$res_gh/versions.txt" || die "second harness run did not use gatehouse"
  TPUT_MD=$("$PY" - "$res_oc" "$res_gh" "$GH_MTU" "${mtu:-?}" <<'EOF'
import csv, re, statistics, sys, glob
oc, gh, ghmtu, ocmtu = sys.argv[1:5]
def load(d):
    v = {}
    for r in csv.DictReader(open(d + "/measurements.csv")):
        if r["phase"] != "tput" or r["mode"] != "cstp": continue
        try: v.setdefault(r["metric"], []).append(float(r["value"]))
        except ValueError: pass
    return v
def med(v, k): return statistics.median(v[k]) if v.get(k) else None
def rng(v, k): return (min(v[k]), max(v[k])) if v.get(k) else None
def cipher(d):
    for f in sorted(glob.glob(d + "/raw/tput-cstp-*.oc.log")):
        for l in open(f, errors="replace"):
            m = re.search(r"ciphersuite (\S+)", l)
            if m: return m.group(1)
    return "?"
O, G = load(oc), load(gh)
def f(x, p=0): return "-" if x is None else ("%.*f" % (p, x))
def ratio(a, b, p=2): return "-" if a is None or b in (None, 0) else "%.*f" % (p, a / b)
rows = []
for d in ("up", "down"):
    k = d + "_Mbps"; o, g = med(O, k), med(G, k)
    ro, rg = rng(O, k), rng(G, k)
    rows.append("| %s Mb/s (median, min-max, n=%d/%d) | %s (%s-%s) | %s (%s-%s) | **%s** |" % (
        d, len(O.get(k, [])), len(G.get(k, [])), f(o), f(ro and ro[0]), f(ro and ro[1]),
        f(g), f(rg and rg[0]), f(rg and rg[1]), ratio(g, o)))
for d in ("up", "down"):
    k = d + "_server_cpu_s_per_GB"
    rows.append("| %s server CPU-s per GB (lower is better) | %s | %s | %s |" % (d, f(med(O, k), 2), f(med(G, k), 2), ratio(med(G, k), med(O, k))))
for d in ("up", "down"):
    for k, lab in ((d + "_server_cpu_pct", "server CPU % of 1 core"), (d + "_client_cpu_pct", "openconnect CPU % of 1 core"),
                   (d + "_host_busy_pct", "host busy % of all CPUs"), (d + "_retransmits", "TCP retransmits"),
                   (d + "_idle_busy_before_pct", "idle busy before run % (>10 = foreign load)")):
        rows.append("| %s %s | %s | %s | |" % (d, lab, f(med(O, k)), f(med(G, k))))
k = "idle_rtt_avg_ms"
rows.append("| idle RTT through the tunnel, ms | %s | %s | %s |" % (f(med(O, k), 3), f(med(G, k), 3), ratio(med(G, k), med(O, k))))
rows.append("| TLS ciphersuite (openconnect log) | %s | %s | |" % (cipher(oc), cipher(gh)))
rows.append("| tunnel MTU | %s | %s | |" % (ocmtu, ghmtu))
print("| CSTP throughput (openconnect --no-dtls, iperf3 1 TCP stream) | ocserv | Gatehouse | Gatehouse/ocserv |")
print("|---|---|---|---|")
print("\n".join(rows))
print()
print("Harness results: ocserv `%s`, Gatehouse `%s`." % (oc, gh))
EOF
) || die "could not summarise the throughput results"
}

# ---------------------------------------------------------------- b. resume / login rates
RATES_MD=""
jiffies() { local f; f=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }; f=${f##*) }; set -- $f; echo $(( ${12} + ${13} )); }
rates_part() {
  rate_teardown
  ip netns add $NS_GW; ip netns add $NS_CLI
  ip link add ghb-c type veth peer name ghb-g
  ip link set ghb-c netns $NS_CLI; ip link set ghb-g netns $NS_GW
  ip -n $NS_GW link set lo up; ip -n $NS_CLI link set lo up
  ip -n $NS_CLI addr add $CLI_IP/24 dev ghb-c; ip -n $NS_CLI link set ghb-c up
  ip -n $NS_GW addr add $GW_IP/24 dev ghb-g; ip -n $NS_GW link set ghb-g up
  ip netns exec $NS_CLI ping -c1 -W2 -q $GW_IP >/dev/null || die "rate topology: ping $GW_IP failed"
  # ECDSA P-256 certificate, like the harness's
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$GW_IP" -addext "subjectAltName=IP:$GW_IP" \
    -keyout "$WORK/rate-key.pem" -out "$WORK/rate-cert.pem" >/dev/null 2>&1 || die "openssl req failed"
  local lg=$WORK/rate-node.log
  OCB_CERT=$WORK/rate-cert.pem OCB_KEY=$WORK/rate-key.pem OCB_LISTEN=$GW_IP OCB_PORT=443 \
  OCB_POOL=$RATE_POOL OCB_ROUTE=$RATE_ROUTE OCB_DPD=90 OCB_USER=test OCB_PASS=testpass \
  GATEHOUSE_WORKDIR=$WORK/rate-node GATEHOUSE_MTU=${GATEHOUSE_MTU:-1434} GATEHOUSE_SIMULTANEOUS_LOGINS=100000 \
  RUST_LOG=$RATE_RUST_LOG \
    ip netns exec $NS_GW bash "$HERE/gatehouse-server.sh" > "$lg" 2>&1 < /dev/null &
  GH_PID=$!
  local i; for i in $(seq 300); do grep -q 'gatehouse node ready' "$lg" && break; kill -0 "$GH_PID" 2>/dev/null || break; sleep 0.1; done
  grep -q 'gatehouse node ready' "$lg" || { tail -20 "$lg" >&2; die "gatehouse node did not start (log above)"; }
  log "rates: gatehouse node up in $NS_GW (pid $GH_PID, RUST_LOG=$RATE_RUST_LOG)"
  probe() { ip netns exec $NS_CLI timeout -k 5 "$RATE_TIMEOUT" "$PROBE_BIN" "$GW_IP:443" "$@"; }
  local cookie; cookie=$(probe login test testpass) || die "probe login failed"
  [[ "$cookie" == cookie\ * ]] || die "probe login: $cookie"
  cookie=${cookie#cookie }
  local rows=() hz; hz=$(getconf CLK_TCK)
  loop() { # label n conc goal args...
    local label=$1 n=$2 conc=$3 goal=$4; shift 4
    local j0 j1 t0 t1 out ok fail secs rate cpu
    j0=$(jiffies "$GH_PID"); t0=$EPOCHREALTIME
    out=$(probe "$@") || out="error rc=$?"
    t1=$EPOCHREALTIME; j1=$(jiffies "$GH_PID")
    log "rates: $label n=$n conc=$conc: $out"
    read -r _ ok _ fail _ secs _ rate <<< "$out"
    cpu=$(echo "($j1-$j0)*1000/$hz/${ok:-1}" | bc -l 2>/dev/null | xargs printf '%.2f' 2>/dev/null)
    local cpupct; cpupct=$(echo "($j1-$j0)*100/$hz/($t1-$t0)" | bc -l 2>/dev/null | xargs printf '%.0f' 2>/dev/null)
    local verdict=""
    if [ -n "$goal" ]; then
      verdict=$(echo "${rate:-0} >= $goal" | bc -l 2>/dev/null); [ "$verdict" = 1 ] && verdict="≥ $goal: met" || verdict="≥ $goal: **not met**"
    fi
    rows+=("| $label | $n | $conc | ${ok:-?} | ${fail:-?} | ${secs:-?} | **${rate:-?}** | ${verdict:--} | ${cpu:-?} | ${cpupct:-?} |")
  }
  local c
  for c in $RESUME_CONC; do loop "resume (TLS handshake + CONNECT with cookie)" "$RESUME_N" "$c" "$RESUME_GOAL" resume-loop "$cookie" "$RESUME_N" "$c"; done
  for c in $LOGIN_CONC; do loop "login (TLS + 2 POSTs, argon2id verify)" "$LOGIN_N" "$c" "" login-loop test testpass "$LOGIN_N" "$c"; done
  local warns; warns=$(grep -c ' WARN \| ERROR ' "$lg" 2>/dev/null)
  RATES_MD=$(printf '%s\n' \
    "| Gatehouse rate (gh-cstp-probe, $NS_CLI -> $NS_GW) | N | concurrency | ok | fail | secs | rate /s | goal | node CPU ms per ok op | node CPU % of 1 core |" \
    "|---|---|---|---|---|---|---|---|---|---|" "${rows[@]}")
  RATES_MD+=$'\n\n'"Node log: ${warns:-0} WARN/ERROR lines (RUST_LOG=$RATE_RUST_LOG). The probe client runs on the same $(nproc) CPUs and pays its own TLS handshakes: the rates are a lower bound of what the node alone sustains. A login costs one argon2id verification (~20 ms of CPU by design), so logins/s is bounded near nproc × 50."
  rate_teardown
}

# ---------------------------------------------------------------- main
for p in $PARTS; do
  case $p in
    tput) tput_part ;;
    rates) rates_part ;;
    *) die "unknown part $p (PARTS accepts: tput rates)" ;;
  esac
done

{
  echo "# Gatehouse benchmark $STAMP"
  echo
  echo "- machine: $MACHINE"
  echo "- gatehouse: $("$GATEHOUSE_BIN" --version 2>/dev/null), git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$( [ -n "$(git -C "$REPO" status --porcelain -- gateway proto 2>/dev/null)" ] && echo ' + uncommitted changes in gateway/ or proto/')"
  echo "- command: PARTS=\"$PARTS\" TPUT_ROUNDS=$TPUT_ROUNDS TPUT_SECS=$TPUT_SECS RESUME_N=$RESUME_N RESUME_CONC=\"$RESUME_CONC\" LOGIN_N=$LOGIN_N LOGIN_CONC=\"$LOGIN_CONC\" bash bench/run.sh"
  if [ -n "$TPUT_MD" ]; then echo; echo "## Throughput (ocserv baseline harness, $(basename "$OCB_SCRIPT"))"; echo; echo "$TPUT_MD"; fi
  if [ -n "$RATES_MD" ]; then echo; echo "## Resume and login rates"; echo; echo "$RATES_MD"; fi
} > "$OUTMD"
log "saved $OUTMD"
cat "$OUTMD"
