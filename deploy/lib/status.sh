# The cluster's status: $RUN/status.json (what does not change while it runs) and
# `status [--json]` (that plus what is live). Every JSON document is built by jq, never
# by pasting strings. Sourced by deploy/cluster.

write_status_json() {
  local hosts devices host i=1 entry email pin
  hosts=$(for host in "${HOSTS[@]}"; do
    jq -n --arg name "$host" --arg address "$(addr "$host")" --arg namespace "$(ns "$host")" \
      '{name: $name, address: $address, namespace: $namespace}'
  done | jq -s .)
  devices=$(for entry in "${DEMO[@]}"; do
    read -r email pin <<< "$entry"
    # control: the argv prefix that drives the running device (add `more MESSAGE_ID`).
    jq -n --arg pin "$pin" --arg email "$email" --arg process "device-$i" --arg log "$TMP/device-$pin.jsonl" \
      --arg credential "$TMP/device-$pin.json" --arg bin "$BIN/bramble-device" --arg state "$TMP/device-$pin.json.state" '
      {pin: $pin, email: $email, process: $process, log: $log, credential: $credential,
       control: [$bin, "control", "--state", $state]}'
    i=$((i + 1))
  done | jq -s .)
  # The mail host: where to send and read, and the demo mailboxes' passwords, read by jq
  # from their 0600 file into this 0600 one (never an argument); the service account's
  # password only as the path of its file.
  local mail=null dir="$TMP/mail" passwords=/dev/null
  if [ -f "$RUN/mail-host" ]; then
    passwords="$dir/user-passwords"
    mail=$(jq -n --arg smtp "$(addr mail):$SMTP_PORT" --arg imap "$(addr mail):$IMAP_PORT" --arg lmtp "127.0.0.1:$LMTP_PORT" \
      --arg submission "$(addr mail):$SUBMISSION_PORT" --arg domain "$MAIL_DOMAIN" --arg user "$MAIL_SERVICE_USER" --arg password_file "$dir/service-password" \
      --arg dovecot_log "$dir/dovecot.log" --arg postfix_log "$dir/postfix.log" '
      {host: "mail", smtp: $smtp, imap: $imap, lmtp: $lmtp, submission: $submission, domain: $domain,
       service_account: {user: $user, password_file: $password_file}, logs: {dovecot: $dovecot_log, postfix: $postfix_log}}')
  fi
  # Demo mailboxes ready to activate over the air: the path of each one's activation
  # password file (never the password: status holds no activation password).
  local activations
  activations=$(for email in "${MAIL_USERS[@]}"; do
    [ ! -f "$TMP/activation-password-$email" ] || jq -n --arg email "$email" --arg file "$TMP/activation-password-$email" '{($email): $file}'
  done | jq -s 'add // {}')
  # The argv prefixes that run a device against this cluster's relay (in the client
  # host's namespace, with its TLS settings): activate appends --email E --password-file F
  # --credential OUT, run appends --credential FILE --json.
  local device_commands
  device_commands=$(jq -n --arg exec "$BRAMBLE_ROOT/deploy/cluster" --arg bin "$BIN/bramble-device" --arg relay "$(addr relay):$DEVICE_PORT" \
    --argjson tls "$(client_tls_flag | jq -R 'split(" ")')" '
    {activate: ([$exec, "exec", $bin, "activate", "--relay", $relay] + $tls), run: ([$exec, "exec", $bin, "run", "--relay", $relay] + $tls)}')
  # The IM host: where clients connect, and every account with its password (JID =
  # e-mail address), read by jq from its 0600 file like the mailboxes'.
  local im=null im_passwords=/dev/null
  if [ -f "$RUN/im-host" ]; then
    im_passwords="$TMP/im/user-passwords"
    im=$(jq -n --arg xmpp "$(addr im):$XMPP_PORT" --arg domain "$IM_DOMAIN" --arg log "$TMP/im/prosody.log" '
      {host: "im", xmpp: $xmpp, domain: $domain, logs: {prosody: $log}}')
  fi
  # The monitoring host: Prometheus's URL (on the monitoring host: reach it with `exec`),
  # the rule files it loaded (its copies), its config and log.
  local monitoring=null
  if [ -f "$RUN/monitoring-host" ]; then
    monitoring=$(jq -n --arg url "$(monitoring_url)" --arg config "$TMP/monitoring/prometheus.yml" --arg log "$TMP/monitoring/prometheus.log" \
      --argjson rules "$(monitoring_rules "$TMP/monitoring" | jq -R . | jq -s .)" '
      {host: "monitoring", prometheus: $url, rules: $rules, config: $config, logs: {prometheus: $log}}')
  fi
  ( umask 077
    jq -n --arg mode "$MODE" --argjson hosts "$hosts" --arg exec "$BRAMBLE_ROOT/deploy/cluster exec" \
      --arg a_url "$(node_url node-a)" --arg b_url "$(node_url node-b)" --arg a_conf "$TMP/node-a.conf" --arg b_conf "$TMP/node-b.conf" \
      --rawfile token "$TMP/admin-token" --arg devices_addr "$(addr relay):$DEVICE_PORT" --arg srp "$(addr relay):$SRP_PORT" \
      --arg relay_health "$(relay_health_url)" --arg audit "$TMP/relay-audit.jsonl" --argjson devices "$devices" --arg tmp "$TMP" --argjson mail "$mail" \
      --argjson im "$im" --rawfile im_passwords "$im_passwords" --rawfile passwords "$passwords" --arg ca "$TMP/tls/ca.crt" --rawfile push_token "$TMP/push-token" --arg tls_mode "$TLS_MODE" \
      --argjson monitoring "$monitoring" --argjson activations "$activations" --argjson device_commands "$device_commands" '
      {mode: $mode, hosts: $hosts, exec: $exec,
       tls: {ca: $ca, enabled: ($tls_mode == "yes"),
             links: (if $tls_mode == "no" then {srp: "plain (BRAMBLE_DEPLOY_TLS=no)", devices: "plain (BRAMBLE_DEPLOY_TLS=no)", api: "plain (BRAMBLE_DEPLOY_TLS=no)", database: "plain (BRAMBLE_DEPLOY_TLS=no)", imap: "plain (BRAMBLE_DEPLOY_TLS=no)", smtp: "plain (BRAMBLE_DEPLOY_TLS=no)", xmpp: "plain (BRAMBLE_DEPLOY_TLS=no)", submission: "plain (BRAMBLE_DEPLOY_TLS=no)", etcd: "mutual TLS (clients and peers) and authentication (users root, patroni)", patroni: "plain (BRAMBLE_DEPLOY_TLS=no)"} else {srp: "mutual TLS (the node verifies the relay, the relay the node)", devices: "TLS (devices verify the relay)",
                     api: "HTTPS (clients verify the node and relay certificates; mail notifications too)",
                     database: "TLS, verify-full from the nodes; scram-sha-256; replication verify-full",
                     imap: "IMAPS (TLS from the first byte; the nodes verify the mail host)",
                     smtp: "TLS from the first byte (wrapper mode); clients verify the mail host",
                     submission: "TLS from the first byte; SASL login as each user through the service account (Postfix lets a login send only as itself)",
                     xmpp: "TLS from the first byte (XEP-0368 direct TLS); clients verify the IM host; SASL SCRAM-SHA-1",
                     etcd: "mutual TLS (clients and peers) and authentication (users root, patroni)",
                     patroni: "HTTPS; basic authentication for changes (switchover, config)"} end)},
       nodes: [{name: "node-a", host: "node-a", health_url: "\($a_url)/health", push_url: "\($a_url)/push", config: $a_conf},
               {name: "node-b", host: "node-b", health_url: "\($b_url)/health", push_url: "\($b_url)/push", config: $b_conf}],
       push_url: "\($a_url)/push", admin_token: ($token | rtrimstr("\n")), push_token: ($push_token | rtrimstr("\n")), push_app: "demo",
       relay: {host: "relay", devices: $devices_addr, srp: $srp, health_url: $relay_health, audit_log: $audit},
       devices: $devices, device_commands: $device_commands,
       mail: (if $mail then $mail + {users: [$passwords | split("\n")[] | select(length > 0) | split(" ") | {email: .[0], password: .[1]}
                                             | . + (if $activations[.email] then {activation_password_file: $activations[.email]} else {} end)]}
              else null end),
       im: (if $im then $im + {users: [$im_passwords | split("\n")[] | select(length > 0) | split(" ") | {jid: .[0], password: .[1]}], prosody_pid: null}
            else null end),
       monitoring: (if $monitoring then $monitoring + {prometheus_pid: null} else null end),
       tmpdir: $tmp}' > "$RUN/status.json.new" )
  mv -f "$RUN/status.json.new" "$RUN/status.json"
}

# One entry of `processes`: name, host, pid, alive; a supervised one adds restarts (in
# the last 24 h), supervisor_pid and supervised (its supervisor is running).
process_json() {  # name host pid [supervised]
  local alive=false pid=${3:-}
  [[ $pid =~ ^[0-9]+$ ]] || pid=""
  [ -n "$pid" ] && alive_pid "$pid" && alive=true
  if [ "${4:-}" = supervised ]; then
    local sup sup_alive=false; sup=$(pid_of "$1.supervisor")
    [ -n "$sup" ] && alive_pid "$sup" && sup_alive=true
    jq -n --arg name "$1" --arg host "$2" --argjson pid "${pid:-null}" --argjson alive "$alive" \
      --argjson restarts "$(restarts "$1")" --argjson sup "${sup:-null}" --argjson supervised "$sup_alive" \
      '{name: $name, host: $host, pid: $pid, alive: $alive, restarts: $restarts, supervisor_pid: $sup, supervised: $supervised}'
  else
    jq -n --arg name "$1" --arg host "$2" --argjson pid "${pid:-null}" --argjson alive "$alive" \
      '{name: $name, host: $host, pid: $pid, alive: $alive}'
  fi
}

# A node's /health as JSON, or null when it does not answer with JSON.
node_health() { run_in "$(ns client)" curl -sS --max-time 1 "$(node_url "$1")/health" 2>/dev/null | jq -c . 2>/dev/null || echo null; }

# The static status plus what is live: processes (alive, restarts), database members and
# etcd as Patroni and etcd report them, and each node's /health (role, epoch, score).
live_status_json() {
  local db health procs name i
  db=$(db_status "$TMP/db")
  health=$(jq -n --argjson a "$(node_health node-a)" --argjson b "$(node_health node-b)" '{"node-a": $a, "node-b": $b}')
  procs=$( { for name in "${SUPERVISED[@]}"; do process_json "$name" "$name" "$(pid_of "$name")" supervised; done
             for name in $(jq -r '.devices[].process' "$RUN/status.json"); do process_json "$name" client "$(pid_of "$name")"; done
             for i in 0 1; do
               local member; member=$(jq -c ".members[$i]" <<< "$db")
               process_json "${DB_MEMBERS[$i]}-patroni" "db$((i + 1))" "$(jq -r '.patroni_pid // empty' <<< "$member")"
               process_json "${DB_MEMBERS[$i]}-postgres" "db$((i + 1))" "$(jq -r '.pid // empty' <<< "$member")"
             done
             for i in 0 1 2; do process_json "etcd$i" "db$((i + 1))" "$(jq -r ".etcd[$i].pid // empty" <<< "$db")"; done
             if [ -f "$RUN/mail-host" ]; then
               process_json dovecot mail "$(mail_dovecot_pid "$TMP/mail")"
               process_json postfix mail "$(mail_postfix_pid "$TMP/mail")"
             fi
             [ ! -f "$RUN/im-host" ] || process_json prosody im "$(im_prosody_pid "$TMP/im")"
             [ ! -f "$RUN/monitoring-host" ] || process_json prometheus monitoring "$(monitoring_prometheus_pid "$TMP/monitoring")"
           } | jq -s .)
  jq --argjson db "$db" --argjson health "$health" --argjson procs "$procs" '
    ($procs | map({(.name): .}) | add) as $p
    | .nodes |= map(. + {pid: $p[.name].pid, alive: $p[.name].alive,
                         role: (if $health[.name] then $health[.name].role else "unreachable" end),
                         restarts: $p[.name].restarts})
    | .pair = [.nodes[] | $health[.name] as $h
               | {node: .name, role: .role, epoch: (if $h then $h.epoch else null end), score: (if $h then $h.score else null end)}]
    | .database = [$db.members[] | . + {alive: ($p["\(.name)-postgres"].alive // false)}]
    | .patroni_timers = $db.timers
    | .etcd = $db.etcd
    | .relay += {pid: $p.relay.pid, restarts: $p.relay.restarts, alive: $p.relay.alive}
    | if .im then .im.prosody_pid = $p.prosody.pid else . end
    | if .monitoring then .monitoring.prometheus_pid = $p.prometheus.pid else . end
    | .processes = $procs' "$RUN/status.json"
}

cmd_status() {
  require_up; set_db_hosts; set_monitoring_host
  local status targets=""; status=$(live_status_json)
  if [ "${1:-}" = --json ]; then echo "$status"; return 0; fi
  [ ! -f "$RUN/monitoring-host" ] || targets=$(monitoring_targets_up)
  jq -r --arg targets "$targets" '
    def col($w): tostring | . + " " * ([$w - length, 0] | max);
    "mode \(.mode); hosts: " + ([.hosts[] | "\(.name) \(.address)"] | join(", ")),
    (.nodes as $nodes | .pair[] | . as $p | ($nodes[] | select(.name == $p.node)) as $n
      | "node     \($p.node | col(8)) \($p.role | col(12)) epoch \($p.epoch)  score \($p.score)  restarts \($n.restarts)"),
    (.database[] | "database \(.name | col(8)) \(.role | col(12)) \(.host):\(.port)  postmaster pid \(.pid)  api \(.api_url)"),
    "etcd     " + ([.etcd[] | "\(.name) \(if .healthy then "healthy" else "UNHEALTHY" end)"] | join(", ")),
    "relay    \(.relay.devices) (devices), \(.relay.srp) (SRP)  restarts \(.relay.restarts)",
    (if .mail then "mail     SMTP \(.mail.smtp), IMAP \(.mail.imap), submission \(.mail.submission)  \(.mail.domain): "
       + ([.mail.users[].email | split("@")[0]] | join(", "))
       + "  service account \(.mail.service_account.user) (password in \(.mail.service_account.password_file))"
     else "mail     not started (Postfix needs root)" end),
    (if .im then ([.im.users[] | select(.jid | startswith("imbench"))] | length) as $bench
       | "im       XMPP \(.im.xmpp)  \(.im.domain): "
       + ([.im.users[].jid | select(startswith("imbench") | not) | split("@")[0]] | join(", "))
       + (if $bench > 0 then " and \($bench) bench users (imbench1…)" else "" end)
       + "  Prosody pid \(.im.prosody_pid)"
     else "im       not started (Prosody is not installed)" end),
    (if .monitoring then "monitoring Prometheus \(.monitoring.prometheus)  "
       + (if $targets == "" then "targets unknown (its API does not answer)" else ($targets | split(" ")) as [$up, $all] | "targets up \($up)/\($all)" end)
       + "  rules: \(.monitoring.rules | length) file(s)  pid \(.monitoring.prometheus_pid)"
     else "monitoring not started (Prometheus is not installed)" end),
    ([.processes[] | select(.alive | not) | .name]) as $down
    | ([.processes[] | select(.restarts != null and .supervised == false and .alive) | .name]) as $unsupervised
    | "processes: \(.processes | length - ($down | length)) of \(.processes | length) running"
      + (if $down | length > 0 then "; down: " + ($down | join(", ")) else "" end)
      + "; restarts after a crash (24 h, at most 10 each): "
      + ([.processes[] | select(.restarts != null) | "\(.name) \(.restarts)"] | join(", "))
      + (if $unsupervised | length > 0 then "; not supervised: " + ($unsupervised | join(", ")) else "" end)
  ' <<< "$status"
}
