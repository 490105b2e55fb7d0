# The cluster's hosts: network namespaces on a private bridge (as root), else one host,
# 127.0.0.1, with distinct ports. Sourced by deploy/cluster.

choose_mode() {
  case "${BRAMBLE_DEPLOY_HOSTS:-}" in
    loopback) MODE=loopback; say "hosts: one host, 127.0.0.1 with distinct ports (BRAMBLE_DEPLOY_HOSTS=loopback)"; return ;;
    netns|"") ;;
    *) die "BRAMBLE_DEPLOY_HOSTS must be netns or loopback" ;;
  esac
  local why=""
  if [ "$(id -u)" -ne 0 ]; then why="not root"
  elif ! command -v ip >/dev/null 2>&1; then why="no ip command (iproute2)"
  elif ! ip netns add "$PREFIX-probe" 2>/dev/null; then why="ip netns add failed"
  else ip netns del "$PREFIX-probe"; fi
  if [ -z "$why" ]; then MODE=netns; return; fi
  [ "${BRAMBLE_DEPLOY_HOSTS:-}" = netns ] && die "cannot make network namespaces: $why"
  MODE=loopback
  say "hosts: network namespaces cannot be made here ($why); falling back to one host, 127.0.0.1 with distinct ports"
}

make_hosts() {
  local bridge="${PREFIX}br" i=0 host n
  say "hosts: namespaces $PREFIX-{${HOSTS[*]}} on bridge $bridge, $NET.0/24"
  ip link add "$bridge" type bridge && echo "$bridge" > "$RUN/bridge"
  ip link set "$bridge" up
  for host in "${HOSTS[@]}"; do
    n=$(ns "$host")
    ip netns add "$n" && echo "$n" >> "$RUN/namespaces"
    ip link add "${PREFIX}v$i" type veth peer name eth0 netns "$n"
    ip link set "${PREFIX}v$i" master "$bridge" up
    ip -n "$n" addr add "$(addr "$host")/24" dev eth0
    ip -n "$n" link set eth0 up
    ip -n "$n" link set lo up
    i=$((i + 1))
  done
}

# Anything still running in a namespace was started by this cluster: stop it by PID (all
# namespaces at once), then remove the namespaces and the bridge.
remove_hosts() {
  local n pids=() live=()
  if [ -f "$RUN/namespaces" ]; then
    while read -r n; do
      ip netns list 2>/dev/null | grep -qx "$n\( (id: [0-9]*)\)\?" || continue
      live+=("$n")
      pids+=($(ip netns pids "$n" 2>/dev/null))
    done < "$RUN/namespaces"
    [ ${#pids[@]} -eq 0 ] || { say "stopping ${#pids[@]} leftover process(es) in the namespaces"; stop_pids 5 "${pids[@]}"; }
    for n in "${live[@]}"; do ip netns del "$n"; done
  fi
  [ -f "$RUN/bridge" ] && ip link del "$(cat "$RUN/bridge")" 2>/dev/null || true
}
