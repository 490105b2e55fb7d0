# Each drill's fault and its heal. $primary and $standby are set, and $live was read just
# before the fault. Sourced by chaos/drill.

inject() {
  case "$1" in
    kill-primary) kill -KILL "$(field "${primary}_pid")" ;;
    pause-primary) kill -STOP "$(field "${primary}_pid")" ;;
    kill-standby) kill -KILL "$(field "${standby}_pid")" ;;
    switchover) "$CLUSTER" exec bramble failover >/dev/null ;;
    restart-relay) kill -KILL "$(cat "$RUN/relay.pid")" ;;
    kill-db-primary) kill -KILL "$(field db_leader_pid)" ;;
    isolate-primary) ip -n "$(ns_of "$primary")" link set eth0 down ;;
    partition-primary-relay) ip -n "$(ns_of "$primary")" route add blackhole "$(addr_of relay)/32" ;;
    partition-primary-db)
      for h in db1 db2 db3; do ip -n "$(ns_of "$primary")" route add blackhole "$(addr_of "$h")/32" || return 1; done ;;
    slow-link) # netem where the kernel has it; else (this machine's kernel is built without
      # sch_netem) a token-bucket rate limit, which delays by queueing, and nft dropping 5%
      # of packets each way
      ip netns exec "$(ns_of "$primary")" tc qdisc add dev eth0 root netem delay 100ms 20ms loss 5% 2>/dev/null && return 0
      say "  tc netem is not in this kernel: tbf rate limit (queueing delay) and nft 5% loss instead"
      command -v nft >/dev/null || { say "nft is missing: run \`make deps\`"; return 1; }
      ip netns exec "$(ns_of "$primary")" tc qdisc add dev eth0 root tbf rate 256kbit burst 16kbit latency 300ms || return 1
      ip netns exec "$(ns_of "$primary")" nft -f - <<'NFT'
table inet bramble_chaos {
  chain in { type filter hook input priority 0; policy accept; numgen random mod 100 < 5 drop; }
  chain out { type filter hook output priority 0; policy accept; numgen random mod 100 < 5 drop; }
}
NFT
      ;;
    flap) # three planned switchovers 4 s apart: 3 registrations, under the relay's 5 a minute
      for i in 1 2 3; do "$CLUSTER" exec bramble failover >/dev/null || return 1; [ "$i" -eq 3 ] || sleep 4; done ;;
    restart-mail) "$CLUSTER" restart-mail >/dev/null ;;
    partition-primary-mail) ip -n "$(ns_of "$primary")" route add blackhole "$(addr_of mail)/32" ;;
  esac
}

# A killed node or relay is restarted by deploy/cluster's supervisor within about a
# second; start-node and start-relay then find it running, which is fine.
heal() {
  case "$1" in
    kill-primary) "$CLUSTER" start-node "$primary" >/dev/null ;;
    pause-primary) kill -CONT "$(field "${primary}_pid")" ;;
    kill-standby) "$CLUSTER" start-node "$standby" >/dev/null ;;
    restart-relay) "$CLUSTER" start-relay >/dev/null ;;
    isolate-primary) ip -n "$(ns_of "$primary")" link set eth0 up ;;
    partition-primary-relay) ip -n "$(ns_of "$primary")" route del blackhole "$(addr_of relay)/32" ;;
    partition-primary-db)
      for h in db1 db2 db3; do ip -n "$(ns_of "$primary")" route del blackhole "$(addr_of "$h")/32" || true; done ;;
    partition-primary-mail) ip -n "$(ns_of "$primary")" route del blackhole "$(addr_of mail)/32" ;;
    slow-link) ip netns exec "$(ns_of "$primary")" tc qdisc del dev eth0 root
      ip netns exec "$(ns_of "$primary")" nft delete table inet bramble_chaos 2>/dev/null || true ;;
    *) ;;
  esac
}

# Seconds the fault lasts before it is healed (pause beyond the 1 s lease, etc.).
fault_seconds() { case "$1" in pause-primary) echo 3 ;; isolate-primary|partition-*|slow-link) echo 5 ;; *) echo 2 ;; esac; }
