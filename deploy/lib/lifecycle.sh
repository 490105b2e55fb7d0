# `up` and `down`: the whole cluster started in order, and stopped with nothing left
# behind. Sourced by deploy/cluster.

build_binaries() {
  if [ -n "${BRAMBLE_BIN:-}" ]; then
    BIN=$BRAMBLE_BIN  # prebuilt binaries (the tests: a build inside `swift test` would wait on its lock)
  else
    say "building ($CONFIG)…"
    local product
    for product in bramble-server bramble-relay bramble-device bramble bramble-bench; do
      (cd "$BRAMBLE_ROOT" && swift build -c "$CONFIG" --product "$product" 2>&1 | grep -vE '^\[|^Building|^Build of|^Compiling|^Write' >&2 || true)
    done
    BIN="$(cd "$BRAMBLE_ROOT" && swift build -c "$CONFIG" --show-bin-path)"
  fi
  for product in bramble-server bramble-relay bramble-device bramble; do [ -x "$BIN/$product" ] || die "build failed: no $BIN/$product"; done
}

cmd_up() {
  if [ -f "$RUN/status.json" ]; then
    if alive node-a && alive node-b && alive relay && alive device-1 && alive device-2 && mail_host_up && im_host_up && monitoring_host_up; then
      say "already up"; cmd_status; return 0
    fi
    say "a previous cluster is partly down; cleaning it up first"; cmd_down
    MODE=""
  fi
  # A new cluster's TLS comes from this command's environment, never from a leftover state file.
  TLS_MODE=${BRAMBLE_DEPLOY_TLS:-yes}
  [ "$TLS_MODE" = yes ] || [ "$TLS_MODE" = no ] || die "BRAMBLE_DEPLOY_TLS must be yes or no"
  DB_TLS=$TLS_MODE MAIL_TLS=$TLS_MODE IM_TLS=$TLS_MODE
  local started=$SECONDS
  ensure_ha_packages
  [ "$(id -u)" -ne 0 ] || ensure_mail_packages
  # Prosody needs no root (it runs as the caller then): the IM host starts whenever it is installed.
  local im=yes
  if [ "$(id -u)" -eq 0 ]; then ensure_im_packages; else (ensure_im_packages) 2>/dev/null || im=no; fi
  # Prometheus needs no root either (it runs as the caller then).
  local monitoring=yes
  if [ "$(id -u)" -eq 0 ]; then ensure_monitoring_packages; else (ensure_monitoring_packages) 2>/dev/null || monitoring=no; fi
  choose_mode
  set_db_hosts; set_mail_host; set_im_host; set_monitoring_host
  if [ "$MODE" = loopback ]; then
    for p in $(db_ports) "$DEVICE_PORT" "$SRP_PORT" "$RELAY_HTTP_PORT" "$NODE_A_PORT" "$NODE_B_PORT" $(mail_ports) $(im_ports) $(monitoring_ports); do
      port_busy "$p" && die "port $p is in use; stop what holds it or set the BRAMBLE_*_PORT variables"
    done
  else
    ip link show "${PREFIX}br" >/dev/null 2>&1 && die "bridge ${PREFIX}br exists but no cluster state is in $RUN; remove it (ip link del ${PREFIX}br) or set BRAMBLE_DEPLOY_PREFIX"
  fi
  build_binaries
  local build_done=$SECONDS

  mkdir -p "$RUN"; chmod 700 "$RUN"
  echo "$MODE" > "$RUN/mode"
  echo "$TLS_MODE" > "$RUN/tls-mode"
  [ "$TLS_MODE" = yes ] || say "warning: BRAMBLE_DEPLOY_TLS=no: the relay, nodes, devices, PostgreSQL, Patroni's API and the mail host run without TLS (for measuring its cost only)"
  TMP=$(mktemp -d /tmp/bramble-cluster.XXXXXX)
  chmod 711 "$TMP"  # PostgreSQL runs as an unprivileged user and must reach its data dir
  echo "$TMP" > "$RUN/tmpdir"; echo "$BIN" > "$RUN/bin"
  [ "$MODE" = netns ] && make_hosts

  ( umask 077
    echo "$SRP_ID $(random_key)" > "$TMP/srp-keys"
    random_token > "$TMP/admin-token"
    random_token > "$TMP/db-password"
    random_key > "$TMP/kek" )  # the key-encryption key both nodes seal master keys under
  DB_BRAMBLE_PASSWORD=$(cat "$TMP/db-password")
  tls_setup "$TMP/tls"
  set_db_hosts; set_mail_host; set_im_host; set_monitoring_host  # again, now that the certificates' paths are known
  export CURL_CA_BUNDLE=$TMP/tls/ca.crt  # curl trusts it for the nodes' and the relay's HTTPS
  # The mail and IM hosts start beside the database (they need nothing else; under a second each).
  local mail_starter="" im_starter=""
  if [ "$(id -u)" -eq 0 ]; then
    echo yes > "$RUN/mail-host"
    say "starting mail host on $(addr mail) (SMTP :$SMTP_PORT, submission :$SUBMISSION_PORT, IMAP :$IMAP_PORT$([ "$TLS_MODE" = yes ] && echo ", all TLS"), LMTP 127.0.0.1:$LMTP_PORT there; $MAIL_DOMAIN)"
    ( mail_start "$TMP/mail" ) & mail_starter=$!
  else
    say "mail host: not started (Postfix's master must start as root)"
  fi
  if [ "$im" = yes ]; then
    echo yes > "$RUN/im-host"
    say "starting IM host on $(addr im) (XMPP :$XMPP_PORT$([ "$TLS_MODE" = yes ] && echo ", TLS from the first byte"); $IM_DOMAIN, Prosody)"
    ( im_start "$TMP/im" ) & im_starter=$!
  else
    say "IM host: not started (Prosody is not installed; as root, \`make up\` installs it)"
  fi
  db_start "$TMP/db"
  [ -z "$mail_starter" ] || wait "$mail_starter" || die "the mail host did not start (logs in $TMP/mail)"
  [ -z "$im_starter" ] || wait "$im_starter" || die "the IM host did not start (logs in $TMP/im)"

  # Prometheus starts beside the relay and the pair, and its first scrapes still find them
  # up: it hands its targets to its scrapers only at its service discovery's first 5-s tick
  # (a fixed throttle in Prometheus 2.42), and the pair is up about 1.5 s after the relay
  # starts. Started after the pair, it would add those 5–7 s to `up`; started beside the
  # database, its first scrapes would find the pair down (a burst of alerts at every `up`).
  local monitoring_starter="" monitoring_started=$SECONDS
  if [ "$monitoring" = yes ]; then
    echo yes > "$RUN/monitoring-host"
    say "starting monitoring host on $(addr monitoring) (Prometheus :$PROMETHEUS_PORT, scraping the pair, the relay and Patroni every 2 s)"
    ( monitoring_start "$TMP/monitoring" ) & monitoring_starter=$!
  else
    say "monitoring host: not started (Prometheus is not installed; as root, \`make up\` installs it)"
  fi

  say "starting relay on $(addr relay) (devices :$DEVICE_PORT, SRP :$SRP_PORT, http :$RELAY_HTTP_PORT)"
  start_relay

  # node-a first, so it takes the lease; then its standby, ready only once it could take
  # over (its score reaches the promotion threshold), not merely once it says "standby".
  write_node_config node-a; write_node_config node-b
  say "starting node-a on $(node_url node-a)"
  start_node node-a
  wait_http_ok "$(node_url node-a)/primary" 60 "$(ns client)" || { tail -20 "$TMP/node-a.log" >&2; die "node-a did not become primary"; }
  say "starting node-b on $(node_url node-b), node-a's standby"
  start_node node-b
  wait_http_ok "$(node_url node-b)/standby" 60 "$(ns client)" || { tail -20 "$TMP/node-b.log" >&2; die "node-b did not start as standby"; }
  wait_node_ready node-b 60 || die "node-b did not become ready to take over (its /health/ready)"

  start_devices
  if [ -n "$monitoring_starter" ]; then
    wait "$monitoring_starter" || die "the monitoring host did not start (logs in $TMP/monitoring)"
    monitoring_wait_targets "$TMP/monitoring" 20 || die "Prometheus does not see every target up (its targets: deploy/cluster exec curl $(monitoring_url)/api/v1/targets)"
    say "Prometheus sees every target up ($((SECONDS - monitoring_started)) s after it was started; ready after $(cat "$TMP/monitoring/prometheus.start-ms") ms)"
  fi
  write_status_json
  local ready=$SECONDS
  cat >&2 <<MSG

Bramble is up and ready ($MODE hosts) in $((ready - started)) s ($((ready - build_done)) s after the build):
node-a ($(node_url node-a)) is primary, node-b ($(node_url node-b)) its standby, ready to take
over; PostgreSQL pg1 leads with pg2 as its synchronous standby under Patroni. Either node
accepts pushes. A supervisor restarts a crashed node or relay (at most 10 times a day).
MSG
  if mail_host_up; then
    cat >&2 <<MSG
The mail host takes SMTP at $(addr mail):$SMTP_PORT for $MAIL_DOMAIN (${MAIL_USERS[*]%%@*}) and serves
their mailboxes over IMAP at $(addr mail):$IMAP_PORT$([ "$TLS_MODE" = yes ] && echo ", both TLS from the first byte"); \`make status\` has their passwords and the CA.
MSG
  fi
  if im_host_up && [ -f "$RUN/im-host" ]; then
    cat >&2 <<MSG
The IM host (Prosody) takes XMPP clients for $IM_DOMAIN at $(addr im):$XMPP_PORT$([ "$TLS_MODE" = yes ] && echo ", TLS from the first byte"); each
demo user's JID is their e-mail address, all in one shared roster; \`make status\`'s im has their passwords.
MSG
  fi
  if [ "$monitoring" = yes ]; then
    cat >&2 <<MSG
Prometheus ($(monitoring_url)) scrapes both nodes, the relay and both Patroni members every 2 s
and evaluates the alert rules of deploy/monitoring: \`deploy/cluster exec curl $(monitoring_url)/api/v1/alerts\`.
MSG
  fi
  if [ "$MODE" = netns ]; then
    cat >&2 <<MSG
The hosts' addresses exist only inside their namespaces: run commands on the client host.
MSG
  fi
  cat >&2 <<MSG

  deploy/cluster exec bramble push --to ${DEMO[0]%% *} --subject Hello --body 'First push'
  deploy/cluster exec bramble status          # the pair; \`bramble failover\` switches it over
  deploy/cluster logs ${DEMO[0]##* } -f            # watch the device show it
  make status                                  # the whole cluster as JSON;  make down  stops it

MSG
  cmd_status
}

# Everything stops at once where order does not matter, in three steps: the supervisors
# (so nothing is restarted), then the devices, nodes and relay together (a primary
# demotes and records it while the database is still there), then the database; the
# mail, IM and monitoring hosts, which need none of them, stop meanwhile.
cmd_down() {
  [ -d "$RUN" ] || { say "nothing to stop"; return 0; }
  TMP=$(cat "$RUN/tmpdir" 2>/dev/null || true)
  # The mail host stops beside everything else (Dovecot's own shutdown takes about a second).
  local mail_stopper="" im_stopper="" monitoring_stopper=""
  if [ -n "$TMP" ] && [ -d "$TMP/mail" ]; then ( mail_stop "$TMP/mail" ) & mail_stopper=$!; fi
  if [ -n "$TMP" ] && [ -d "$TMP/im" ]; then ( im_stop "$TMP/im" ) & im_stopper=$!; fi
  if [ -n "$TMP" ] && [ -d "$TMP/monitoring" ]; then ( monitoring_stop "$TMP/monitoring" ) & monitoring_stopper=$!; fi
  stop_supervised 10 device-1 device-2 "${SUPERVISED[@]}"
  if [ -n "$TMP" ] && [ -d "$TMP/db" ]; then set_db_hosts; db_stop "$TMP/db"; fi
  [ -z "$mail_stopper" ] || wait "$mail_stopper" || true
  [ -z "$im_stopper" ] || wait "$im_stopper" || true
  [ -z "$monitoring_stopper" ] || wait "$monitoring_stopper" || true
  [ "$MODE" = netns ] && remove_hosts
  case "$TMP" in /tmp/bramble-cluster.*) rm -rf "$TMP" ;; esac
  rm -rf "$RUN"
  say "down"
}
