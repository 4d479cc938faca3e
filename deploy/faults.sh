# faults.sh - container faults shared by deploy/compose-drill.sh and bench/compose-failover.sh
# (sourced, not run).

# partition PROJECT CONTAINER SECONDS: disconnect CONTAINER from the project's cluster and
# public networks, wait SECONDS, and connect it again with the same addresses.
partition() {
  local project=$1 cid=$2 secs=$3 net
  local -A ips
  for net in cluster public; do
    ips[$net]=$(docker inspect -f "{{(index .NetworkSettings.Networks \"${project}_${net}\").IPAddress}}" "$cid")
    docker network disconnect "${project}_${net}" "$cid"
  done
  sleep "$secs"
  for net in cluster public; do docker network connect --ip "${ips[$net]}" "${project}_${net}" "$cid"; done
}
