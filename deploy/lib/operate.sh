# An operator's commands on a running cluster: logs, exec, stop-node, start-node,
# start-relay, db-switchover, restart-mail, restart-im, restart-monitoring. Sourced by
# deploy/cluster.

cmd_logs() {
  require_up
  local name=${1:-} f file
  if [ -z "$name" ]; then
    for f in "$TMP"/*.log "$TMP"/db/*.log "$TMP"/mail/*.log "$TMP"/im/*.log "$TMP"/monitoring/*.log; do [ -f "$f" ] && printf '%-10s %s\n' "$(basename "$f" .log)" "$f"; done
    for f in "$TMP"/device-*.jsonl; do [ -f "$f" ] && printf '%-10s %s\n' "$(basename "$f" .jsonl | sed 's/^device-//')" "$f"; done
    return 0
  fi
  # A process's log, or a device's log of shown items by its PIN.
  for file in "$TMP/$name.log" "$TMP/db/$name.log" "$TMP/mail/$name.log" "$TMP/im/$name.log" "$TMP/monitoring/$name.log" "$TMP/device-$name.jsonl"; do [ -f "$file" ] && break; done
  [ -f "$file" ] || die "no log named '$name' (\`deploy/cluster logs\` lists them)"
  if [ "${2:-}" = -f ]; then exec tail -n 50 -f "$file"; else tail -n 100 "$file"; fi
}

cmd_exec() {
  require_up
  local host=client
  if [ "${1:-}" = --host ]; then host=${2:-}; shift 2; [ -n "${OCTET[$host]:-}" ] || die "no host '$host' (${HOSTS[*]})"; fi
  [ $# -gt 0 ] || die "usage: deploy/cluster exec [--host HOST] COMMAND [ARG…]"
  PATH="$BIN:$PATH" BRAMBLE_URL="$(node_url node-a),$(node_url node-b)" BRAMBLE_TOKEN="$(cat "$TMP/admin-token")" \
    BRAMBLE_STATUS="$RUN/status.json" BRAMBLE_CA_FILE="$TMP/tls/ca.crt" CURL_CA_BUNDLE="$TMP/tls/ca.crt" \
    BRAMBLE_PLAINTEXT=$([ "$TLS_MODE" = yes ] && echo no || echo yes) run_in "$(ns "$host")" "$@"
}

# A supervised daemon the operator starts: running already (perhaps restarted by its
# supervisor a moment ago), about to be restarted by its supervisor (then wait for it),
# or stopped (then start it under a new supervisor with its restart count reset).
# Returns 1 when it was running already.
start_operator() {  # name start-function
  local name=$1 i
  if supervisor_alive "$name" && ! alive "$name"; then
    say "$name crashed; its supervisor is restarting it"
    for i in $(seq 1 50); do alive "$name" && return 0; sleep 0.1; done
  fi
  if alive "$name"; then
    supervisor_alive "$name" || say "$name runs without its supervisor (it was killed): stop-node/start-node puts one back"
    return 1
  fi
  stop_supervised 2 "$name"  # a supervisor that gave up, or one left over
  RESET=1 "$2" "$name"
}

cmd_start_node() {
  require_up
  node_port "$1" >/dev/null
  if ! start_operator "$1" start_node; then say "$1 is already running"; return 0; fi
  wait_http_ok "$(node_url "$1")/health/live" 60 "$(ns client)" || { tail -20 "$TMP/$1.log" >&2; die "$1 did not start"; }
  wait_node_ready "$1" 60 || die "$1 started but is not ready (its /health/ready)"
  say "$1 started (pid $(pid_of "$1")); ready"
}

cmd_stop_node() {
  node_port "$1" >/dev/null
  if ! alive "$1"; then
    [ -d "$RUN" ] && stop_supervised 2 "$1"  # a supervisor about to restart it must not
    say "$1 is not running"; return 0
  fi
  stop_supervised 10 "$1"
  say "$1 stopped"
}

# Start the relay again after a kill or stop (the drills restart it).
cmd_start_relay() {
  require_up
  BRAMBLE_RELAY_ARGS=$(cat "$RUN/relay-args" 2>/dev/null || true)
  if ! start_operator relay start_relay_named; then say "relay is already running"; return 0; fi
  wait_http_ok "$(relay_health_url)" 20 "$(ns client)" || { tail -20 "$TMP/relay.log" >&2; die "relay did not start"; }
  say "relay started (pid $(pid_of relay))"
}
start_relay_named() { start_relay; }

# A planned switchover of the database primary to the other member (patronictl).
cmd_db_switchover() {
  require_up; set_db_hosts
  local leader candidate idx=1
  if run_in "${PG_NS[0]}" curl -fsS -o /dev/null --max-time 1 "$(patroni_url 0)/primary" 2>/dev/null; then leader=pg1 candidate=pg2; else leader=pg2 candidate=pg1; fi
  say "database switchover: $leader → $candidate"
  run_in "${PG_NS[0]}" env -i PATH=/usr/bin:/bin LANG=C.UTF-8 /usr/bin/patronictl -c "$TMP/db/pg1.yml" \
    switchover --leader "$leader" --candidate "$candidate" --force bramble >&2
  [ "$candidate" = pg1 ] && idx=0
  wait_http_ok "$(patroni_url $idx)/primary" 30 "${PG_NS[$idx]}" || die "$candidate did not become the database primary"
  say "$candidate is the database primary"
}

# Restart the mail host: Dovecot and Postfix stopped by PID and started again on the same
# configs, mailboxes and queue (mail Postfix accepted waits in its queue meanwhile).
cmd_restart_mail() {
  require_up
  [ -f "$RUN/mail-host" ] || die "this cluster has no mail host (Postfix needs root)"
  set_mail_host
  mail_stop "$TMP/mail"
  mail_start "$TMP/mail"
  say "mail host restarted (dovecot pid $(mail_dovecot_pid "$TMP/mail"), postfix pid $(mail_postfix_pid "$TMP/mail"))"
}

# Restart the IM host: Prosody stopped by PID (its sessions end; clients reconnect) and
# started again on the same config, accounts and archives.
cmd_restart_im() {
  require_up
  [ -f "$RUN/im-host" ] || die "this cluster has no IM host (Prosody was not installed)"
  set_im_host
  im_stop "$TMP/im"
  im_start "$TMP/im"
  say "IM host restarted (prosody pid $(im_prosody_pid "$TMP/im"))"
}

# Restart the monitoring host: Prometheus stopped by PID and started again on the same data
# (its history kept), with the rule files of deploy/monitoring copied afresh and its config
# written again; done once every target is up.
cmd_restart_monitoring() {
  require_up
  [ -f "$RUN/monitoring-host" ] || die "this cluster has no monitoring host (Prometheus was not installed)"
  set_monitoring_host
  monitoring_stop "$TMP/monitoring"
  monitoring_start "$TMP/monitoring"
  monitoring_wait_targets "$TMP/monitoring" 20 || die "Prometheus does not see every target up"
  # status.json names the rule files it loaded now.
  ( umask 077; jq --argjson rules "$(monitoring_rules "$TMP/monitoring" | jq -R . | jq -s .)" '.monitoring.rules = $rules' \
      "$RUN/status.json" > "$RUN/status.json.new" )
  mv -f "$RUN/status.json.new" "$RUN/status.json"
  say "monitoring host restarted (prometheus pid $(monitoring_prometheus_pid "$TMP/monitoring"), $(monitoring_rules "$TMP/monitoring" | wc -l) rule file(s))"
}
