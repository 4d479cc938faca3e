#!/usr/bin/env bash
# deploy/compose.sh - the docker-compose deployment (docker-compose.yml, docs/deploy.md) from
# local material only: images are assembled from this checkout's binaries, the Debian
# packages installed on this host and their shared libraries (no registry, no base image),
# and the cluster's PKI and configs come from `gatehouse init`.
#
#   deploy/compose.sh up                 # build images, write configs (once), start everything
#   deploy/compose.sh ps                 # docker-compose ps of this deployment
#   deploy/compose.sh compose logs gw1   # any docker-compose command, with this deployment's
#                                        # project name, compose file and env file
#   deploy/compose.sh pin                # the servercert pin clients need
#   deploy/compose.sh down               # stop and remove containers, networks and volumes
#
# Commands: build | init | up | down | ps | compose ARGS... | pin | user NAME | clean
# Options (before the command):
#   --profile release|debug   which cargo profile's binaries go into the images (default
#                             release; the end-to-end test uses debug, which CI builds)
#   --dir DIR                 configs and PKI (default ./compose-cluster, git-ignored)
#   -p, --project NAME        docker-compose project name (default gatehouse)
#   --tag TAG                 image tag (default local)
#   --nodes N                 gateway nodes / slots written by init (default 3; more than 3
#                             adds gw4.. in DIR/compose.nodes.yml)
#   --timing default|tolerant Raft and slot timing written by init (docs/deploy.md)
#   --bin-dir DIR             take the binaries from DIR instead of target/<profile>
# Environment read by init: GATEHOUSE_NET_PUBLIC, GATEHOUSE_NET_INSIDE, GATEHOUSE_NET_CLUSTER
# (first three octets of each /24, defaults 172.29.10, 172.29.20, 172.29.30), GATEHOUSE_USER
# (default demo) and GATEHOUSE_PASSWORD (default: random, saved in DIR/users/password).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROFILE=release
DIR=""
PROJECT=${COMPOSE_PROJECT_NAME:-gatehouse}
TAG=""
NODES=3
TIMING=default
BIN_DIR=""

die() { echo "compose.sh: $*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    -p|--project) PROJECT=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --timing) TIMING=$2; shift 2 ;;
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage 2
CMD=$1; shift
case "$PROFILE" in release|debug) ;; *) die "--profile is release or debug" ;; esac
case "$TIMING" in default|tolerant) ;; *) die "--timing is default or tolerant" ;; esac
[[ "$NODES" =~ ^[1-9]$ ]] || die "--nodes is 1..9"
DIR=${DIR:-${GATEHOUSE_DIR:-$ROOT/compose-cluster}}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
ENV_FILE=$DIR/compose.env
BIN=${BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE}

# The tag: the option, else what init recorded, else "local".
if [ -z "$TAG" ]; then
  TAG=$(sed -n 's/^GATEHOUSE_TAG=//p' "$ENV_FILE" 2>/dev/null || true)
  TAG=${TAG:-local}
fi

# ---------------------------------------------------------------------------------- images

# Copy executable $2 to $1 (a root file system being assembled) at path $3 (default: the
# same path), with every shared library `ldd` names and the program interpreter, at their
# paths on this host.
add_exe() {
  local root=$1 src=$2 dst=${3:-$2} lib
  [ -x "$src" ] || die "$src is missing (install it, or build the binaries: cargo build --bins${PROFILE/debug/}${PROFILE/release/ --release})"
  mkdir -p "$root$(dirname "$dst")"
  cp -L "$src" "$root$dst"
  for lib in $(ldd "$src" 2>/dev/null | awk '/=> \//{print $3} /^[[:space:]]*\//{print $1}'); do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# A workspace binary, debug info stripped (debug builds are hundreds of megabytes; function
# names stay for backtraces).
add_cargo_bin() {
  local root=$1 name=$2
  [ -x "$BIN/$name" ] || die "$BIN/$name is not built: cargo build --bins$( [ "$PROFILE" = release ] && echo ' --release')"
  add_exe "$root" "$BIN/$name" "/usr/local/bin/$name"
  if command -v objcopy >/dev/null; then
    objcopy --strip-debug "$root/usr/local/bin/$name"
  fi
}

# busybox (Debian package busybox-static) as /bin/busybox with a link per applet, except
# those named in $2 (a space-separated list the image has real programs for).
add_busybox() {
  local root=$1 skip=" ${2:-} " a
  local bb
  bb=$(command -v busybox) || die "busybox is missing (apt-get install busybox-static; scripts/install-deps.sh)"
  add_exe "$root" "$bb" /bin/busybox
  for a in $(busybox --list); do
    case "$skip" in *" $a "*) continue ;; esac
    [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
  done
}

base_fs() {
  local root=$1
  mkdir -p "$root"/{etc,tmp,run,var/lib,var/log,usr/local/bin,usr/sbin,bin}
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
  local f
  for f in /etc/protocols /etc/services; do
    [ -f "$f" ] && cp "$f" "$root$f"
  done
  return 0
}

# docker build of a FROM-scratch image: $1 name, $2 root file system, then Dockerfile lines.
build_image() {
  local name=$1 root=$2 ctx
  shift 2
  ctx=$(dirname "$root")
  {
    echo "FROM scratch"
    echo "COPY $(basename "$root")/ /"
    echo "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    echo "LABEL org.gatehouse.profile=$PROFILE"
    printf '%s\n' "$@"
  } >"$ctx/Dockerfile"
  echo "compose.sh: building $name:$TAG"
  local out old new
  old=$(docker image inspect -f '{{.Id}}' "$name:$TAG" 2>/dev/null || true)
  # The legacy builder: FROM scratch needs nothing from a registry or from BuildKit.
  out=$(DOCKER_BUILDKIT=0 docker build -q -t "$name:$TAG" "$ctx" 2>&1) \
    || die "docker build of $name failed: $out"
  new=$(docker image inspect -f '{{.Id}}' "$name:$TAG")
  # The image this tag named before, unless a container still uses it.
  if [ -n "$old" ] && [ "$old" != "$new" ]; then
    docker image rm "$old" >/dev/null 2>&1 || true
  fi
}

cmd_build() {
  command -v docker >/dev/null || die "docker is not installed"
  local work
  work=$(mktemp -d /tmp/gatehouse-images.XXXXXX)
  # shellcheck disable=SC2064 # expand now: $work is local
  trap "rm -rf '$work'" EXIT

  # node: gatehouse, gatehousectl and nft (the kernel fence); no shell, no iproute2.
  local r=$work/node/rootfs
  base_fs "$r"
  add_cargo_bin "$r" gatehouse
  add_cargo_bin "$r" gatehousectl
  add_exe "$r" "$(command -v nft || echo /usr/sbin/nft)" /usr/sbin/nft
  mkdir -p "$r/var/lib/gatehouse" "$r/etc/gatehouse"
  # busybox as `sh` only, for the entry script (and `docker exec … sh` when debugging). No
  # `ip`: the node needs no iproute2.
  add_exe "$r" "$(command -v busybox || die 'busybox is missing (apt-get install busybox-static)')" /bin/busybox
  ln -s busybox "$r/bin/sh"
  cat >"$r/usr/local/bin/gatehouse-node" <<'EOF'
#!/bin/sh
exec /usr/local/bin/gatehouse run --config /etc/gatehouse/node.toml "$@"
EOF
  chmod 755 "$r/usr/local/bin/gatehouse-node"
  build_image gatehouse-node "$r" \
    'ENV RUST_LOG=info' \
    'WORKDIR /etc/gatehouse' \
    'ENTRYPOINT ["/usr/local/bin/gatehouse-node"]'

  # director: gatehouse-director only.
  r=$work/director/rootfs
  base_fs "$r"
  add_cargo_bin "$r" gatehouse-director
  build_image gatehouse-director "$r" \
    'ENV RUST_LOG=info' \
    'ENTRYPOINT ["/usr/local/bin/gatehouse-director", "--config", "/etc/gatehouse/director.toml"]'

  # lan: busybox (sh, ip, ping, httpd); routes each slot's pool via the slot's inside address.
  r=$work/lan/rootfs
  base_fs "$r"
  add_busybox "$r"
  mkdir -p "$r/www"
  echo "gatehouse lan host" >"$r/www/index.html"
  cat >"$r/usr/local/bin/lan-host" <<'EOF'
#!/bin/sh
# The inside LAN host: routes each slot's pool slice via that slot's inside address (routed
# mode), serves a page on port 80, and waits.
while read -r pool via; do
  case "$pool" in ""|\#*) continue ;; esac
  ip route replace "$pool" via "$via"
done < /etc/gatehouse-lan/routes
httpd -p 80 -h /www
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
EOF
  chmod 755 "$r/usr/local/bin/lan-host"
  build_image gatehouse-lan "$r" 'ENTRYPOINT ["/usr/local/bin/lan-host"]'

  # client: the Debian openconnect with its vpnc-script, iproute2's ip, iputils' ping,
  # gh-arp-probe, busybox for the script's shell tools.
  r=$work/client/rootfs
  base_fs "$r"
  # /bin/sh is dash: busybox's shell runs its own applets before $PATH, and vpnc-script must
  # find iproute2's ip (with busybox's it falls back to `route` and routes the VPN server
  # via the default gateway).
  add_busybox "$r" "sh ip ping ping6 arping"
  add_exe "$r" /bin/dash /bin/dash
  ln -s dash "$r/bin/sh"
  add_exe "$r" "$(command -v openconnect || echo /usr/sbin/openconnect)" /usr/sbin/openconnect
  add_exe "$r" "$(command -v ip || echo /usr/sbin/ip)" /usr/sbin/ip
  add_exe "$r" "$(command -v ping || echo /usr/bin/ping)" /usr/bin/ping
  add_cargo_bin "$r" gh-arp-probe
  add_cargo_bin "$r" gh-fleet
  [ -f /usr/share/vpnc-scripts/vpnc-script ] || die "vpnc-script is missing (apt-get install vpnc-scripts)"
  mkdir -p "$r/usr/share/vpnc-scripts"
  cp /usr/share/vpnc-scripts/vpnc-script "$r/usr/share/vpnc-scripts/"
  [ -d /etc/iproute2 ] && cp -r /etc/iproute2 "$r/etc/"
  # vpnc-script hooks: every state change appended to /run/vpnc-events
  # (`<epoch seconds> <reason> <inner address>`), so a drill can tell a resume from a login.
  local h
  for h in connect reconnect attempt-reconnect disconnect; do
    mkdir -p "$r/etc/vpnc/$h.d"
    printf 'echo "$(date +%%s) %s ${INTERNAL_IP4_ADDRESS:-}" >> /run/vpnc-events\n' "$h" \
      >"$r/etc/vpnc/$h.d/gatehouse-events"
  done
  touch "$r/etc/resolv.conf"
  cat >"$r/usr/local/bin/client-host" <<'EOF'
#!/bin/sh
# The client container waits; openconnect runs in it with `docker exec` (docs/deploy.md).
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
EOF
  chmod 755 "$r/usr/local/bin/client-host"
  build_image gatehouse-client "$r" 'ENTRYPOINT ["/usr/local/bin/client-host"]'
}

# ---------------------------------------------------------------------------------- configs

env_value() { sed -n "s/^$1=//p" "$ENV_FILE"; }

cmd_init() {
  if [ -f "$ENV_FILE" ]; then
    echo "compose.sh: $DIR already holds a deployment (remove it with: $0 --dir $DIR clean)"
    return 0
  fi
  local pub=${GATEHOUSE_NET_PUBLIC:-172.29.10} ins=${GATEHOUSE_NET_INSIDE:-172.29.20}
  local cl=${GATEHOUSE_NET_CLUSTER:-172.29.30}
  local user=${GATEHOUSE_USER:-demo} password=${GATEHOUSE_PASSWORD:-}
  local gatehouse=$BIN/gatehouse ctl=$BIN/gatehousectl
  [ -x "$gatehouse" ] && [ -x "$ctl" ] || die "$BIN has no gatehouse/gatehousectl: cargo build --bins$( [ "$PROFILE" = release ] && echo ' --release')"
  local i j s addrs="" dirs=""
  for i in $(seq 1 "$NODES"); do addrs+="${addrs:+,}$cl.1$i"; done
  for j in 1 2; do dirs+="${dirs:+,}$pub.2$j"; done
  local tmp=$DIR/.init
  rm -rf "$tmp"
  local out
  out=$("$gatehouse" init --cluster compose --nodes "$NODES" --addrs "$addrs" \
    --directors "$dirs" --dir "$tmp" 2>&1) || die "gatehouse init failed: $out"

  local raft="" slots_timing
  if [ "$TIMING" = tolerant ]; then
    raft=$'raft_heartbeat = "50ms"\nelection_timeout_min = "250ms"\nelection_timeout_max = "450ms"'
    slots_timing=$'renew_interval = "100ms"\nlease = "1300ms"'
  else
    slots_timing=$'renew_interval = "50ms"\nlease = "600ms"'
  fi
  local slot_tables=""
  for s in $(seq 1 "$NODES"); do
    slot_tables+="
[[slot]]
id = $s
public_address = \"$pub.$((100 + s))/24\"
inside_address = \"$ins.$((100 + s))/24\"
pool = \"10.99.$s.0/24\"
owner = $s
standby = $((s % NODES + 1))
capacity = 1000
"
  done
  for i in $(seq 1 "$NODES"); do
    local nd=$DIR/node-$i peers=""
    mkdir -p "$nd"
    cp "$tmp/node-$i"/{ca.pem,cluster.pem,cluster.key,server.pem,server.key} "$nd/"
    for j in $(seq 1 "$NODES"); do
      [ "$j" = "$i" ] && continue
      peers+="${peers:+, }{ id = $j, addr = \"$cl.1$j:7443\" }"
    done
    cat >"$nd/node.toml" <<EOF
# Gatehouse node $i of the docker-compose deployment, written by deploy/compose.sh init
# (docs/deploy.md; keys: docs/configuration.md). Mounted at /etc/gatehouse in service gw$i.
[node]
id = $i
listen = "0.0.0.0:443"                 # answers on whichever slot address it holds
data_dir = "/var/lib/gatehouse"        # the named volume gw$i-data
tls_cert = "server.pem"                # shared by every node and director: one pin
tls_key = "server.key"
admin_listen = "127.0.0.1:8444"        # docker exec gw$i gatehousectl ...
metrics_listen = "$cl.1$i:9464"
users_file = "/etc/gatehouse-users/users.toml"
tun_name = "gh0"
mode = "routed"                        # the lan routes each slot's pool via its inside address

[[pool]]
name = "default"
cidr = "10.99.0.0/16"                  # slot s hands out 10.99.s.0/24

[[group_policy]]
name = "default"
address_pool = "default"
split_include = ["$ins.0/24", "10.99.0.0/16"]

[[tunnel_group]]
name = "default"
group_policy = "default"

[cluster]
name = "compose"
listen = "$cl.1$i:7443"
ca_cert = "ca.pem"
cert = "cluster.pem"
key = "cluster.key"
peers = [$peers]
$raft

[slots]
public_interface = "auto"              # Docker does not promise eth0/eth1 order
inside_interface = "auto"
$slots_timing
$slot_tables
EOF
  done
  local nodes_list=""
  for i in $(seq 1 "$NODES"); do nodes_list+="${nodes_list:+, }{ id = $i, addr = \"$cl.1$i:7443\" }"; done
  for j in 1 2; do
    local dd=$DIR/director-$j
    mkdir -p "$dd"
    cp "$tmp/director-$j"/{ca.pem,cluster.pem,cluster.key,server.pem,server.key} "$dd/"
    cat >"$dd/director.toml" <<EOF
# Gatehouse director $j of the docker-compose deployment, written by deploy/compose.sh init
# (docs/director.md). Mounted at /etc/gatehouse in service director$j.
[director]
listen = "$pub.2$j:443"
tls_cert = "server.pem"
tls_key = "server.key"
metrics_listen = "$cl.2$j:9465"
affinity = false

[cluster]
ca_cert = "ca.pem"
cert = "cluster.pem"
key = "cluster.key"
nodes = [$nodes_list]
EOF
  done
  mkdir -p "$DIR/pki"
  cp "$tmp"/{ca.pem,ca.key,server.pem} "$DIR/pki/"
  chmod 600 "$DIR/pki/ca.key"
  rm -rf "$tmp"

  mkdir -p "$DIR/users" "$DIR/lan"
  if [ -z "$password" ]; then
    password=$(openssl rand -base64 12 | tr -d '/+=' | cut -c1-12)
    (umask 077; echo "$password" >"$DIR/users/password")
  fi
  printf '%s\n' "$password" | "$ctl" user add "$user" --users-file "$DIR/users/users.toml" >/dev/null
  {
    echo "# pool slice  via (the slot's inside address): read by the lan container at start"
    for s in $(seq 1 "$NODES"); do echo "10.99.$s.0/24 $ins.$((100 + s))"; done
  } >"$DIR/lan/routes"

  if [ "$NODES" -gt 3 ]; then
    {
      echo "# gw4.. for a deployment of $NODES nodes, written by deploy/compose.sh init"
      echo 'version: "2.4"'
      echo "services:"
      for i in $(seq 4 "$NODES"); do
        cat <<EOF
  gw$i:
    extends: { file: $ROOT/docker-compose.yml, service: gw1 }
    hostname: gw$i
    volumes:
      - $DIR/node-$i:/etc/gatehouse:ro
      - $DIR/users:/etc/gatehouse-users:ro
      - gw$i-data:/var/lib/gatehouse
    networks:
      public: { ipv4_address: $pub.1$i, priority: 100 }
      inside: { ipv4_address: $ins.1$i }
      cluster: { ipv4_address: $cl.1$i }
EOF
      done
      echo "volumes:"
      for i in $(seq 4 "$NODES"); do echo "  gw$i-data:"; done
    } >"$DIR/compose.nodes.yml"
  fi

  cat >"$ENV_FILE" <<EOF
# docker-compose variables of this deployment (deploy/compose.sh passes --env-file)
GATEHOUSE_DIR=$DIR
GATEHOUSE_TAG=$TAG
GATEHOUSE_NET_PUBLIC=$pub
GATEHOUSE_NET_INSIDE=$ins
GATEHOUSE_NET_CLUSTER=$cl
EOF
  echo "compose.sh: wrote $DIR ($NODES nodes, user $user, timing $TIMING)"
}

compose() {
  local files=(-f "$ROOT/docker-compose.yml")
  [ -f "$DIR/compose.nodes.yml" ] && files+=(-f "$DIR/compose.nodes.yml")
  [ -f "$ENV_FILE" ] || die "no deployment in $DIR yet: $0 init"
  GATEHOUSE_TAG=$TAG docker-compose --project-directory "$ROOT" --env-file "$ENV_FILE" \
    -p "$PROJECT" "${files[@]}" "$@"
}

pin() {
  openssl x509 -in "$DIR/pki/server.pem" -pubkey -noout \
    | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64
}

cmd_up() {
  cmd_build
  cmd_init
  compose up -d --remove-orphans
  local pub
  pub=$(env_value GATEHOUSE_NET_PUBLIC)
  cat <<EOF
compose.sh: up. Connect from the client container (user $(sed -n 's/^name = "\(.*\)"/\1/p' "$DIR/users/users.toml" | head -1), password in $DIR/users/password unless you set one):
  $0 --dir $DIR -p $PROJECT compose exec client openconnect --protocol=anyconnect \\
      --servercert pin-sha256:$(pin) -u USER https://$pub.21/
EOF
}

case "$CMD" in
  build) cmd_build ;;
  init) cmd_init ;;
  up) cmd_up ;;
  down) compose down -v --remove-orphans ;;
  ps) compose ps ;;
  compose) compose "$@" ;;
  pin) echo "pin-sha256:$(pin)" ;;
  user)
    [ $# -ge 1 ] || die "user NAME (password on stdin)"
    "$BIN/gatehousectl" user add "$1" --users-file "$DIR/users/users.toml"
    ;;
  clean)
    docker image rm "gatehouse-node:$TAG" "gatehouse-director:$TAG" "gatehouse-lan:$TAG" \
      "gatehouse-client:$TAG" >/dev/null 2>&1 || true
    rm -rf "$DIR"
    ;;
  *) usage 2 ;;
esac
