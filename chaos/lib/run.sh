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

# Prometheus's alerts (GET /api/v1/alerts), polled about once a second from the client
# host into FILE (a line per poll: Unix ms, a space, the answer) until FILE.stop exists,
# and at most LIMIT seconds. The drill's verdict reads it (DrillAlerts).
poll_alerts() {  # url file limit
  local url=$1 out=$2 end=$((SECONDS + $3)) answer
  local -a client=()
  [ "$(static mode)" = netns ] && client=(ip netns exec "$(ns_of client)")
  while [ "$SECONDS" -lt "$end" ] && [ ! -e "$out.stop" ]; do
    answer=$("${client[@]}" curl -sS --max-time 1 "$url/api/v1/alerts" 2>/dev/null | tr -d '\n') || answer=""
    [ -z "$answer" ] || echo "$(date +%s%3N) $answer" >> "$out"
    sleep 1
  done
}

# Whether any alert that was not firing before the fault is firing or pending (about to
# fire) at the last poll: the drill keeps watching until it has cleared.
alerts_still_active() {  # file fault_ms
  local before now
  before=$(awk -v f="$2" '$1 < f' "$1" | tail -1 | cut -d' ' -f2- | jq -c '[.data.alerts[] | select(.state == "firing") | .labels.alertname] | unique' 2>/dev/null) || before="[]"
  now=$(tail -1 "$1" | cut -d' ' -f2- | jq -c '[.data.alerts[] | .labels.alertname] | unique' 2>/dev/null) || return 1
  jq -e --argjson before "${before:-[]}" '(. - $before) | length > 0' <<< "$now" >/dev/null
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
  # With a monitoring host: what the drill looks like in Prometheus's alerts.
  local prometheus alerts="" poller="" fault_at heal_at
  prometheus=$(static prometheus)
  if [ -n "$prometheus" ]; then
    alerts="$RUN/drill-$name.alerts"; rm -f "$alerts" "$alerts.stop"
    poll_alerts "$prometheus" "$alerts" $((duration + SETTLE + 120)) & poller=$!
  fi
  sleep "$(awk -v d="$duration" 'BEGIN { print d / 3 }')"
  read_live
  local leader_before mail_before; leader_before=$(field db_leader) mail_before=$(field mail_pid)
  say "  inject: $name"
  fault_at=$(date +%s%3N)
  # set -e does not hold inside functions called from a condition (drill all): check.
  inject "$name" || { kill "$stream" $poller 2>/dev/null; die "could not inject $name"; }
  sleep "$(fault_seconds "$name")"
  say "  heal"
  heal "$name" || { kill "$stream" $poller 2>/dev/null; die "could not heal $name; see \`deploy/cluster status\`"; }
  heal_at=$(date +%s%3N)
  wait "$stream" || true
  if [ -n "$poller" ]; then
    # Watch on for at least 20 s after the fault (an alert has 15 s to fire), then until
    # what the fault raised (firing or pending) has cleared, at most 60 s after the heal.
    local now
    while now=$(date +%s%3N); [ "$now" -lt $((heal_at + 62000)) ] && [ -s "$alerts" ] \
      && { [ "$now" -lt $((fault_at + 20000)) ] || alerts_still_active "$alerts" "$fault_at"; }; do sleep 1; done
    touch "$alerts.stop"; wait "$poller" || true
  fi
  # The devices' mail's timings (measurements beside the verdict): the slowest send from its
  # acknowledgement to its outcome, and when every one was found after the stream ended,
  # against the settle (an in-doubt send is settled about 30 s after its attempt began).
  local timing
  timing=$(tail -1 "$out" | jq -r 'select(.sent_acked != null)
    | "\(.sent_acked) acknowledged, slowest outcome \(.sent_outcome_max_ms) ms, all found \(.sent_settle_ms) ms after the stream"' 2>/dev/null) || true
  [ -z "$timing" ] || say "  devices' mail: $timing (settle $SETTLE s)"
  read_live
  local leader_after mail_after; leader_after=$(field db_leader) mail_after=$(field mail_pid)
  local -a monitoring=()
  [ -z "$alerts" ] || monitoring=(--alerts-log "$alerts" --fault-at "$fault_at" --heal-at "$heal_at")
  "$BENCH" drill-verdict --drill "$name" --stream "$out" --db-leader-before "$leader_before" --db-leader-after "$leader_after" \
    --mail-pid-before "$mail_before" --mail-pid-after "$mail_after" "${monitoring[@]}" || rc=$?
  rm -f "$out" ${alerts:+"$alerts" "$alerts.stop"}
  return $rc
}
