# The cluster's own processes: the relay and the nodes (each under a supervisor that
# restarts it after a crash, deploy/lib/supervise), and the demo devices. Every one is
# started in its host's namespace with its PID in $RUN/NAME.pid, and stopped by PID.
# Sourced by deploy/cluster.

start_in() {  # name host command…: start in the background in host's namespace, log to tmp/name.log
  local name=$1 host=$2; shift 2
  setsid $(netns_exec "$(ns "$host")") "$@" </dev/null >>"$TMP/$name.log" 2>&1 & echo $! > "$RUN/$name.pid"
}

# Starts NAME on HOST under a supervisor (its PID in $RUN/NAME.supervisor.pid) and waits
# until the supervisor has written the daemon's PID. RESET=1 clears the restart count (an
# operator's start: the 10-a-day limit counts crashes since).
# `env`'s arguments that unset every BRAMBLE_* variable: the cluster's daemons, devices
# and CLI calls take their settings from what is written here, never from the caller's
# environment (a BRAMBLE_PLAINTEXT=no or BRAMBLE_CA_FILE meant for another cluster's CLI
# would override a node's plaintext = yes, or point the CLI at a CA that is gone).
no_bramble_env() { local var; for var in ${!BRAMBLE_@}; do printf -- '-u %s ' "$var"; done; }

start_supervised() {  # name host command…
  local name=$1 host=$2 i; shift 2
  [ "${RESET:-}" = 1 ] && rm -f "$RUN/$name.restarts"
  rm -f "$RUN/$name.pid"
  setsid "$BRAMBLE_ROOT/deploy/lib/supervise" "$name" "$RUN" "$TMP/$name.log" "$(ns "$host")" -- env $(no_bramble_env) "$@" \
    </dev/null >>"$TMP/supervisor.log" 2>&1 & echo $! > "$RUN/$name.supervisor.pid"
  for i in $(seq 1 50); do [ -s "$RUN/$name.pid" ] && return 0; sleep 0.1; done
  die "the supervisor of $name did not start it (see $TMP/supervisor.log)"
}

supervisor_alive() { local pid; pid=$(pid_of "$1.supervisor"); [ -n "$pid" ] && alive_pid "$pid"; }

# Restarts counted in the last 24 h (since the last operator start).
restarts() {
  local since=$(( $(date +%s) - 86400 ))
  awk -v since="$since" '$1 >= since { n++ } END { print n + 0 }' "$RUN/$1.restarts" 2>/dev/null || echo 0
}

# Stops the supervisors of NAME… first (so none restarts what is being stopped), then
# the daemons themselves, all at once: SIGTERM (a primary demotes first), SIGKILL after
# SECONDS.
stop_supervised() {  # seconds name…
  local seconds=$1 name sups=() pids=(); shift
  for name in "$@"; do sups+=("$(pid_of "$name.supervisor")"); done
  stop_pids 2 "${sups[@]}"
  for name in "$@"; do rm -f "$RUN/$name.supervisor.pid"; pids+=("$(pid_of "$name")"); done
  stop_pids "$seconds" "${pids[@]}"
}

write_node_config() {
  local node=$1
  cat > "$TMP/$node.conf" <<CONF
# Written by deploy/cluster; every setting is documented in deploy/examples/bramble-server.conf.
node = $node
srp-id = $SRP_ID
srp-key-file = $TMP/srp-keys
admin-token-file = $TMP/admin-token
relay = $(addr relay):$SRP_PORT
$(tls_settings "$node")
http-listen = $(addr "$node"):$(node_port "$node")
db-host = $(addr db1):$PG_PORT,$(addr db2):$((PG_PORT + 1))
patroni-api = $(scheme)://$(addr db1):$API_PORT,$(scheme)://$(addr db2):$((API_PORT + 1))
db-password-file = $TMP/db-password
key-encryption-key-file = $TMP/kek
CONF
  # The Messaging Agent watches the mail host's mailboxes through the service account.
  [ -f "$RUN/mail-host" ] && cat >> "$TMP/$node.conf" <<CONF
imap = $(addr mail):$IMAP_PORT
smtp-submission = $(addr mail):$SUBMISSION_PORT
mail-service-user = $MAIL_SERVICE_USER
mail-service-password-file = $TMP/mail/service-password
mail-notify-token-file = $TMP/mail/notify-token
CONF
  # The IM host: where the node reaches XMPP, and its domain (a user's JID is their e-mail address).
  [ -f "$RUN/im-host" ] && cat >> "$TMP/$node.conf" <<CONF
xmpp = $(addr im):$XMPP_PORT
xmpp-domain = $IM_DOMAIN
CONF
  return 0
}

start_node() { start_supervised "$1" "$1" "$BIN/bramble-server" --config "$TMP/$1.conf"; }

# Waits until NODE's /health/ready answers 200: a primary with a valid lease and the SRP
# link up, or a standby whose score reaches the promotion threshold (it could take over).
wait_node_ready() {  # node seconds
  wait_http_ok "$(node_url "$1")/health/ready" "$2" "$(ns client)" && return 0
  tail -20 "$TMP/$1.log" >&2
  say "$1 is not ready: $(run_in "$(ns client)" curl -sS --max-time 1 "$(node_url "$1")/health/ready" 2>&1 || true)"
  return 1
}

# The relay keeps an audit log of registrations and of each item's sending epoch, which
# the drills (chaos/) read as evidence independent of the nodes. Every simulated device
# runs on the client host, one source address: a bench's devices all say hello at once,
# so that address may hold more unauthenticated connections than the default 100.
start_relay() {
  echo "${BRAMBLE_RELAY_ARGS:-}" > "$RUN/relay-args"
  start_supervised relay relay "$BIN/bramble-relay" --srp-keys "$TMP/srp-keys" --device-listen "$(addr relay):$DEVICE_PORT" \
    --srp-listen "$(addr relay):$SRP_PORT" --http-listen "$(addr relay):$RELAY_HTTP_PORT" --audit-log "$TMP/relay-audit.jsonl" \
    --max-unauthenticated-per-source 2000 $(tls_flags relay) $(activation_flags) $(cat "$RUN/relay-args")
  wait_http_ok "$(relay_health_url)" 20 "$(ns client)" || { tail -20 "$TMP/relay.log" >&2; die "relay did not start"; }
}

# With the mail host, the relay mails activation requests for its domain to it (BES: the
# BlackBerry Infrastructure), over TLS as any client of the mail host.
activation_flags() {
  [ -f "$RUN/mail-host" ] || return 0
  echo "--activation-domains $MAIL_DOMAIN --activation-smtp $(addr mail):$SMTP_PORT"
}

# The demo mailboxes with no device yet (MAIL_USERS less DEMO): users with a one-time
# activation password (30 days), each in its own 0600 file, for `bramble-device activate`.
ready_activations() {
  local email pin entry has password
  [ -f "$RUN/mail-host" ] || return 0
  for email in "${MAIL_USERS[@]}"; do
    has=""
    for entry in "${DEMO[@]}"; do read -r _ pin <<< "$entry"; [[ $entry == "$email "* ]] && has=$pin; done
    [ -z "$has" ] || continue
    say "adding demo user $email, ready to activate over the air (make status: mail.users)"
    run_in "$(ns client)" env $(no_bramble_env) "$BIN/bramble" user add --url "$(node_url node-a)" --token-file "$TMP/admin-token" $(client_tls_flag) --email "$email" >/dev/null
    password="$TMP/activation-password-$email"
    # 12 characters without look-alikes; head before tr, so no SIGPIPE reaches pipefail.
    local chars; chars=$(head -c 1024 /dev/urandom | LC_ALL=C tr -dc 'a-hjkmnp-z2-9')
    ( umask 077; printf '%s' "${chars:0:12}" > "$password" )
    run_in "$(ns client)" env $(no_bramble_env) "$BIN/bramble" user activation "$email" --url "$(node_url node-a)" --token-file "$TMP/admin-token" $(client_tls_flag) \
      --password-file "$password" --expires 30d >/dev/null
  done
}

start_devices() {
  local i=1 entry email pin
  # A push application for the demo, with a token good only for POST /push (status's
  # push_token; the admin token stays with the operator).
  run_in "$(ns client)" env $(no_bramble_env) "$BIN/bramble" app add demo --url "$(node_url node-a)" --token-file "$TMP/admin-token" $(client_tls_flag) \
    --out "$TMP/push-token" >/dev/null
  for entry in "${DEMO[@]}"; do
    read -r email pin <<< "$entry"
    say "adding demo user $email with device $pin"
    # The token from its file, never in an argument list.
    run_in "$(ns client)" env $(no_bramble_env) "$BIN/bramble" user add --url "$(node_url node-a)" --token-file "$TMP/admin-token" $(client_tls_flag) --email "$email" --name "Demo User $i" >/dev/null
    run_in "$(ns client)" env $(no_bramble_env) "$BIN/bramble" device provision --url "$(node_url node-a)" --token-file "$TMP/admin-token" $(client_tls_flag) --email "$email" --pin "$pin" \
      --out "$TMP/device-$pin.json" >/dev/null
    start_in "device-$i" client env $(no_bramble_env) "$BIN/bramble-device" run --credential "$TMP/device-$pin.json" \
      --relay "$(addr relay):$DEVICE_PORT" $(client_tls_flag) --log "$TMP/device-$pin.jsonl"
    i=$((i + 1))
  done
  ready_activations
}
