# The replicated configuration database: etcd ×3 and PostgreSQL 15 ×2 under Patroni (a
# primary and a synchronous hot standby), every process started and stopped by PID.
# Source after lib.sh; used by scripts/pg-patroni (all on loopback) and deploy/cluster
# (each member on its own host). Settings from ../shared/notes/patroni-etcd.md.
#
# The caller sets, before db_start/db_status/db_stop:
#   ETCD_ADDR[0..2] ETCD_NS[0..2]   each etcd member's address and network namespace
#   PG_ADDR[0..1]   PG_NS[0..1]     each Patroni/PostgreSQL member's ("" = this host)
#   DB_NET                          CIDR the members and clients connect from
#   ETCD_PORT (clients +0,+2,+4; peers +1,+3,+5), PG_PORT (+i), API_PORT (+i)
# and may set DB_BRAMBLE_PASSWORD (the bramble role's password; else none).
# Patroni timers: ttl 10, loop_wait 1, retry_timeout 4 (keep loop_wait + 2·retry ≤ ttl).

DB_MEMBERS=(pg1 pg2)
PATRONI_TTL=10 PATRONI_LOOP_WAIT=1 PATRONI_RETRY_TIMEOUT=4

etcd_client_url() { echo "http://${ETCD_ADDR[$1]}:$((ETCD_PORT + 2 * $1))"; }
etcd_peer_url() { echo "http://${ETCD_ADDR[$1]}:$((ETCD_PORT + 2 * $1 + 1))"; }
etcd_hosts() { echo "${ETCD_ADDR[0]}:$ETCD_PORT,${ETCD_ADDR[1]}:$((ETCD_PORT + 2)),${ETCD_ADDR[2]}:$((ETCD_PORT + 4))"; }
patroni_url() { echo "http://${PG_ADDR[$1]}:$((API_PORT + $1))"; }
# Every port the database uses (to check they are free on a shared host).
db_ports() { echo "$ETCD_PORT" $((ETCD_PORT + 1)) $((ETCD_PORT + 2)) $((ETCD_PORT + 3)) $((ETCD_PORT + 4)) $((ETCD_PORT + 5)) \
  "$PG_PORT" $((PG_PORT + 1)) "$API_PORT" $((API_PORT + 1)); }

ensure_ha_packages() {
  ensure_packages
  local missing=()
  [ -x /usr/bin/patroni ] || missing+=(patroni)
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
  command -v nft >/dev/null 2>&1 || missing+=(nftables)  # the slow-link drill's packet loss
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]}; install them or run as root"
  say "installing ${missing[*]}"
  # Keep the packaged etcd and Patroni services from starting: these are private ones.
  local added=
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added=1; }
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$added" ] && rm -f /usr/sbin/policy-rc.d
  [ -x /usr/bin/patroni ] || die "patroni did not install"
}

write_patroni_config() {  # dir member index
  local dir=$1 name=$2 i=$3 user; user=$(pg_user)
  local addr=${PG_ADDR[$i]} port=$((PG_PORT + i)) api=$((API_PORT + i))
  mkdir -p "$dir/$name/data" "$dir/$name/socket"
  chown -R "$user" "$dir/$name"; chmod 700 "$dir/$name/data" "$dir/$name/socket"
  cat > "$dir/$name.yml" <<YML
scope: bramble
namespace: /bramble/
name: $name
restapi:
  listen: $addr:$api
  connect_address: $addr:$api
etcd3:
  hosts: $(etcd_hosts)
bootstrap:
  dcs:
    ttl: $PATRONI_TTL
    loop_wait: $PATRONI_LOOP_WAIT
    retry_timeout: $PATRONI_RETRY_TIMEOUT
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    # A crashed postmaster fails over instead of being restarted in place.
    primary_start_timeout: 0
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        synchronous_commit: "on"
        max_wal_senders: 10
        max_replication_slots: 10
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
  post_bootstrap: $dir/post-bootstrap.sh
postgresql:
  listen: $addr:$port
  connect_address: $addr:$port
  data_dir: $dir/$name/data
  bin_dir: $PG_BIN
  pgpass: $dir/$name/pgpass
  authentication:
    replication: {username: replicator, password: "$(cat "$dir/replicator-password")"}
    superuser: {username: $user, password: "$(cat "$dir/superuser-password")"}
    rewind: {username: $user, password: "$(cat "$dir/superuser-password")"}
  parameters:
    unix_socket_directories: $dir/$name/socket
  # A standby's base backup starts with a checkpoint; the default spread one takes minutes.
  basebackup:
    - checkpoint: fast
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all $DB_NET scram-sha-256
    - host replication replicator $DB_NET scram-sha-256
YML
  chown "$user" "$dir/$name.yml"; chmod 600 "$dir/$name.yml"
}

# Starts etcd ×3, then Patroni pg1 (which bootstraps and leads), then pg2; waits for a
# synchronous standby and creates the bramble role and database.
db_start() {
  local dir=$1 user; user=$(pg_user)
  mkdir -p "$dir"; chmod 711 "$dir"
  ( umask 077; [ -f "$dir/replicator-password" ] || random_token > "$dir/replicator-password"
    [ -f "$dir/superuser-password" ] || random_token > "$dir/superuser-password" )

  local cluster="" token i; token="bramble-$(random_token | head -c 8)"
  for i in 0 1 2; do cluster+="${cluster:+,}e$i=$(etcd_peer_url $i)"; done
  say "starting etcd ×3 ($(etcd_hosts))"
  for i in 0 1 2; do
    mkdir -p "$dir/etcd$i"; chmod 700 "$dir/etcd$i"
    setsid $(netns_exec "${ETCD_NS[$i]}") etcd --name "e$i" --data-dir "$dir/etcd$i" \
      --listen-client-urls "$(etcd_client_url $i)" --advertise-client-urls "$(etcd_client_url $i)" \
      --listen-peer-urls "$(etcd_peer_url $i)" --initial-advertise-peer-urls "$(etcd_peer_url $i)" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "$token" --listen-metrics-urls "" \
      </dev/null >"$dir/etcd$i.log" 2>&1 & echo $! > "$dir/etcd$i.pid"
  done
  i=0
  until ETCDCTL_API=3 run_in "${ETCD_NS[0]}" etcdctl --endpoints "$(etcd_hosts)" endpoint health >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { tail -5 "$dir"/etcd*.log >&2; die "etcd did not become healthy"; }; sleep 0.2
  done

  cat > "$dir/post-bootstrap.sh" <<SH
#!/bin/sh
# Patroni runs this once on the first primary, with a connection URL.
set -e
psql "\$1" -q -v ON_ERROR_STOP=1 -c "CREATE ROLE bramble LOGIN${DB_BRAMBLE_PASSWORD:+ PASSWORD '$DB_BRAMBLE_PASSWORD'}" -c "CREATE DATABASE bramble OWNER bramble"
SH
  chown "$user" "$dir/post-bootstrap.sh"; chmod 700 "$dir/post-bootstrap.sh"

  local n=0 name
  for name in "${DB_MEMBERS[@]}"; do
    write_patroni_config "$dir" "$name" "$n"
    say "starting Patroni $name (PostgreSQL ${PG_ADDR[$n]}:$((PG_PORT + n)), REST $(patroni_url $n))"
    setsid $(netns_exec "${PG_NS[$n]}") env -i PATH=/usr/bin:/bin HOME="$dir/$name" LANG=C.UTF-8 LC_ALL=C.UTF-8 \
      $(as_pg_user_words) /usr/bin/patroni "$dir/$name.yml" \
      </dev/null >"$dir/$name.log" 2>&1 & echo $! > "$dir/$name.patroni.pid"
    if [ $n -eq 0 ]; then
      # The first member bootstraps alone, so it is the leader.
      wait_http_ok "$(patroni_url 0)/primary" 60 "${PG_NS[0]}" || { tail -20 "$dir/$name.log" >&2; die "$name did not become the leader"; }
    fi
    n=$((n + 1))
  done
  wait_http_ok "$(patroni_url 1)/sync" 60 "${PG_NS[1]}" || { tail -20 "$dir/pg2.log" >&2; die "pg2 did not become a synchronous standby"; }
  say "database ready: leader pg1 (${PG_ADDR[0]}:$PG_PORT), synchronous standby pg2 (${PG_ADDR[1]}:$((PG_PORT + 1)))"
}


# JSON (built by jq): members (name, role as Patroni reports it, api_url, pid of the
# postmaster, patroni_pid, host, port), etcd (name, client_url, pid, healthy), timers.
db_status() {
  local dir=$1 i members etcd
  members=$(for i in 0 1; do
    local role pid ppid
    role=$(run_in "${PG_NS[$i]}" curl -fsS --max-time 1 "$(patroni_url $i)/patroni" 2>/dev/null | jq -r '.role // "unknown"' 2>/dev/null || true)
    pid=$(head -1 "$dir/${DB_MEMBERS[$i]}/data/postmaster.pid" 2>/dev/null || true)
    ppid=$(cat "$dir/${DB_MEMBERS[$i]}.patroni.pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || pid=null; [[ $ppid =~ ^[0-9]+$ ]] || ppid=null
    jq -n --arg name "${DB_MEMBERS[$i]}" --arg role "${role:-unreachable}" --arg api_url "$(patroni_url $i)" --argjson pid "$pid" \
      --argjson patroni_pid "$ppid" --arg host "${PG_ADDR[$i]}" --argjson port $((PG_PORT + i)) \
      '{name: $name, role: $role, api_url: $api_url, pid: $pid, patroni_pid: $patroni_pid, host: $host, port: $port}'
  done | jq -s .)
  etcd=$(for i in 0 1 2; do
    local healthy=false pid
    ETCDCTL_API=3 run_in "${ETCD_NS[$i]}" etcdctl --endpoints "${ETCD_ADDR[$i]}:$((ETCD_PORT + 2 * i))" --dial-timeout 1s endpoint health >/dev/null 2>&1 && healthy=true
    pid=$(cat "$dir/etcd$i.pid" 2>/dev/null || true); [[ $pid =~ ^[0-9]+$ ]] || pid=null
    jq -n --arg name "e$i" --arg client_url "$(etcd_client_url $i)" --argjson pid "$pid" --argjson healthy "$healthy" \
      '{name: $name, client_url: $client_url, pid: $pid, healthy: $healthy}'
  done | jq -s .)
  jq -n --argjson members "$members" --argjson etcd "$etcd" --argjson ttl "$PATRONI_TTL" --argjson loop_wait "$PATRONI_LOOP_WAIT" \
    --argjson retry_timeout "$PATRONI_RETRY_TIMEOUT" \
    '{members: $members, etcd: $etcd, timers: {ttl: $ttl, loop_wait: $loop_wait, retry_timeout: $retry_timeout}}'
}

# Stops both Patroni members at once (each stops its PostgreSQL), then any postmaster
# left (Patroni double-forks it; its PID is in the data dir), then etcd — all by PID, each
# with a bounded wait before SIGKILL. Patroni's own shutdown takes about 4 s of it (the
# synchronous replica waits up to 2 s to be released by the leader, the leader probes the
# departed replica); stopping the replica first measured 7 s. The etcd members stop one
# after the other: an etcd leader hands its leadership over on SIGTERM and, with its peers
# stopping at the same moment, waits for a transfer that cannot happen (5 s, then SIGKILL).
db_stop() {
  local dir=$1 name i pids=()
  [ -d "$dir" ] || return 0
  for name in "${DB_MEMBERS[@]}"; do pids+=("$(cat "$dir/$name.patroni.pid" 2>/dev/null || true)"); done
  stop_pids 15 "${pids[@]}"
  pids=()
  for name in "${DB_MEMBERS[@]}"; do pids+=("$(head -1 "$dir/$name/data/postmaster.pid" 2>/dev/null || true)"); done
  stop_pids 10 "${pids[@]}"
  for i in 0 1 2; do stop_pids 5 "$(cat "$dir/etcd$i.pid" 2>/dev/null || true)"; done
  return 0
}
