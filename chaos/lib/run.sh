# One drill: settle the cluster, stream pushes, inject the fault a third of the way in,
# heal it, and judge the run (bramble-bench drill-verdict: the verdict's logic is Swift's,
# BrambleCore's DrillVerdict). Sourced by chaos/drill.

# Both nodes running, one primary and a standby that could take over (its /health/ready),
# the database with a leader and a replica, the relay up. Bounded: 60 tries, 1 s apart.
settle_cluster() {
  local n i
  "$CLUSTER" start-relay >/dev/null 2>&1 || true
  for n in node-a node-b; do "$CLUSTER" start-node "$n" >/dev/null 2>&1 || true; done
  for i in $(seq 1 60); do
    read_live
    live_settled && standby_ready && return 0
    sleep 1
  done
  die "the cluster did not settle (both nodes, the standby ready to take over, both database members, relay); see \`deploy/cluster status\`"
}

# The relay locks an SRP ID out after more than 5 registrations a minute (BES), by design:
# wait until its last minute leaves room for this drill's registrations and one to spare
# (up to 70 s; then run anyway, saying so).
wait_for_relay_window() {
  "$BENCH" relay-window --audit-log "$(static audit)" --drill "$1" --timeout 70 \
    || say "  the relay's lockout window is still full: the drill may measure a lockout"
}

# How long a stream waits, after it ends, for what was accepted to be shown and for the
# devices' mail to be found: a send left in doubt by a killed primary is settled about 30 s
# after its attempt began (its 10 s deadline, the server's 5 s timeout, 15 s of grace).
SETTLE=40

run_drill() {
  local name=$1 duration=$2 rate=$3
  case " ${DRILLS[*]} " in *" $name "*) ;; *) die "no drill '$name' (chaos/drill --list)" ;; esac
  [ -f "$RUN/status.json" ] || die "no cluster is up: run \`make up\` first"
  if [[ $NEEDS_NETNS == *" $name "* ]] && [ "$(static mode)" != netns ]; then
    die "$name needs hosts as network namespaces (make up as root); this cluster runs on loopback"
  fi
  # flap's three switchovers, 4 s apart from a third of the way in, must fit the stream.
  if [ "$name" = flap ] && [ "$duration" -lt 24 ]; then duration=24; say "flap runs for at least 24 s"; fi
  settle_cluster
  sleep 4  # past the hold-off of a node that demoted in the last drill
  wait_for_relay_window "$name"
  read_live
  primary=$(field primary) standby=$(field standby)
  local out="$RUN/drill-$name.out" rc=0
  say "drill $name: ${duration}s at ${rate}/s; primary $primary, standby $standby"
  "$CLUSTER" exec bramble-bench stream --status "$RUN/status.json" --duration "$duration" --rate "$rate" --settle "$SETTLE" \
    --relay-audit "$(static audit)" > "$out" 2>/dev/null &
  local stream=$!
  sleep "$(awk -v d="$duration" 'BEGIN { print d / 3 }')"
  read_live
  local leader_before mail_before; leader_before=$(field db_leader) mail_before=$(field mail_pid)
  say "  inject: $name"
  # set -e does not hold inside functions called from a condition (drill all): check.
  inject "$name" || { kill "$stream" 2>/dev/null; die "could not inject $name"; }
  sleep "$(fault_seconds "$name")"
  say "  heal"
  heal "$name" || { kill "$stream" 2>/dev/null; die "could not heal $name; see \`deploy/cluster status\`"; }
  wait "$stream" || true
  # The devices' mail's timings (measurements beside the verdict): the slowest send from its
  # acknowledgement to its outcome, and when every one was found after the stream ended,
  # against the settle (an in-doubt send is settled about 30 s after its attempt began).
  local timing
  timing=$(tail -1 "$out" | jq -r 'select(.sent_acked != null)
    | "\(.sent_acked) acknowledged, slowest outcome \(.sent_outcome_max_ms) ms, all found \(.sent_settle_ms) ms after the stream"' 2>/dev/null) || true
  [ -z "$timing" ] || say "  devices' mail: $timing (settle $SETTLE s)"
  read_live
  local leader_after mail_after; leader_after=$(field db_leader) mail_after=$(field mail_pid)
  "$BENCH" drill-verdict --drill "$name" --stream "$out" --db-leader-before "$leader_before" --db-leader-after "$leader_after" \
    --mail-pid-before "$mail_before" --mail-pid-after "$mail_after" || rc=$?
  rm -f "$out"
  return $rc
}
