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
#   DB_TLS_DIR                      a CA made by tls_ca (scripts/tls.sh) holding host dirs
#                                   db1 db2 db3: etcd member i and Patroni/PostgreSQL member i
#                                   use db$((i+1)); the db1/db2 keys owned by pg_user, 0600
#   DB_BRAMBLE_PASSWORD             the bramble role's password (required)
# db_status and db_stop also work without DB_TLS_DIR: db_start records it in DIR/tls-dir.
# DB_TLS=no (only for measuring what TLS costs: `make bench`) leaves PostgreSQL and
# Patroni's REST API without TLS (passwords still required); etcd keeps its TLS.
# Patroni timers: ttl 10, loop_wait 1, retry_timeout 4 (keep loop_wait + 2·retry ≤ ttl).
#
# Every link is TLS with our CA and a password: etcd clients and peers (mutual TLS, and
# etcd auth: users root and patroni), Patroni's REST API (TLS; its unsafe methods need a
# CA-signed client certificate and the password), PostgreSQL over TCP (hostssl +
# scram-sha-256 only; replication and pg_rewind with sslmode=verify-full). Passwords are
# generated into 0600 files in DIR: etcd-root-password, etcd-patroni-password,
# patroni-api-password, replicator-password, superuser-password.

DB_MEMBERS=(pg1 pg2)
PATRONI_TTL=10 PATRONI_LOOP_WAIT=1 PATRONI_RETRY_TIMEOUT=4

etcd_client_url() { echo "https://${ETCD_ADDR[$1]}:$((ETCD_PORT + 2 * $1))"; }
etcd_peer_url() { echo "https://${ETCD_ADDR[$1]}:$((ETCD_PORT + 2 * $1 + 1))"; }
etcd_hosts() { echo "${ETCD_ADDR[0]}:$ETCD_PORT,${ETCD_ADDR[1]}:$((ETCD_PORT + 2)),${ETCD_ADDR[2]}:$((ETCD_PORT + 4))"; }
etcd_urls() { echo "$(etcd_client_url 0),$(etcd_client_url 1),$(etcd_client_url 2)"; }
DB_TLS=yes  # deploy/cluster sets it after sourcing this (BRAMBLE_DEPLOY_TLS); nothing else may
patroni_url() { echo "$([ "$DB_TLS" = no ] && echo http || echo https)://${PG_ADDR[$1]}:$((API_PORT + $1))"; }
# Host dir of member i's certificate (etcd and Patroni alike).
db_tls_host() { echo "$DB_TLS_DIR/db$(($1 + 1))"; }
# AEAD suites only for TLS 1.2 (our keys are EC); TLS 1.3 is negotiated when both ends can.
ETCD_CIPHERS=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305

# Patroni's client certificate for etcd (member i; in its host dir, key owned by pg_user,
# 0600), issued with DB_TLS_DIR/ca/ca.key if missing. It has no CN: with client-cert-auth
# and auth on, etcd's JSON gateway (Patroni's way in) refuses any certificate with a CN
# ("CommonName of client sending a request against gateway will be ignored"); Patroni
# logs in with its password instead.
db_etcd_client_cert() {  # i
  local i=$1 h; h=$(db_tls_host "$i")
  [ -f "$h/etcd-client-cert.pem" ] && [ -f "$h/etcd-client-key.pem" ] && return 0
  [ -f "$DB_TLS_DIR/ca/ca.key" ] || die "no $h/etcd-client-cert.pem (a CA-signed client certificate without CN for Patroni's etcd client) and no CA key to issue it"
  ( umask 077
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$h/etcd-client-key.pem" 2>/dev/null
    openssl req -new -key "$h/etcd-client-key.pem" -subj "/O=Bramble/OU=db$((i + 1)) Patroni etcd client" -out "$h/etcd-client.csr" 2>/dev/null ) \
    || die "openssl could not make a key for $h/etcd-client-cert.pem"
  openssl x509 -req -in "$h/etcd-client.csr" -CA "$DB_TLS_DIR/ca.crt" -CAkey "$DB_TLS_DIR/ca/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 397 -sha256 -out "$h/etcd-client-cert.pem" \
    -extfile <(printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=clientAuth" "subjectAltName=IP:${PG_ADDR[$i]}") 2>/dev/null \
    || die "openssl could not sign $h/etcd-client-cert.pem"
  rm -f "$h/etcd-client.csr"; chmod 644 "$h/etcd-client-cert.pem"
  chown "$(pg_user)" "$h/etcd-client-key.pem"
}

# etcdctl from member i's namespace with member i's certificate (etcd requires a client
# certificate). Its CN (dbN.bramble) is no etcd user, so it alone reads nothing once auth
# is on; give ETCDCTL_USER/ETCDCTL_PASSWORD in the environment (never in argv) for that.
db_etcdctl() {  # i ARGS...
  local i=$1 h; shift; h=$(db_tls_host "$i")
  ETCDCTL_API=3 run_in "${ETCD_NS[$i]}" etcdctl --cacert "$DB_TLS_DIR/ca.crt" --cert "$h/cert.pem" --key "$h/key.pem" "$@"
}
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
  # python3-etcd switches urllib3 to pyOpenSSL, which needs idna to read a certificate's
  # DNS names (else every https request to etcd fails: "No module named 'idna'").
  /usr/bin/python3 -c 'import idna' >/dev/null 2>&1 || missing+=(python3-idna)
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
  local addr=${PG_ADDR[$i]} port=$((PG_PORT + i)) api=$((API_PORT + i)) h ca="$DB_TLS_DIR/ca.crt"
  h=$(db_tls_host "$i")
  local ssl="sslmode: verify-full, sslrootcert: $ca" restapi_tls ctl_tls pg_tls hba=hostssl
  restapi_tls="  certfile: $h/cert.pem
  keyfile: $h/key.pem
  cafile: $ca
  # GETs (/primary, /health: the nodes' and scripts' probes) need no client certificate;
  # unsafe methods (switchover, config, restart) need a CA-signed one and the password.
  verify_client: optional"
  ctl_tls="# patronictl -c this-file: trusts our CA, presents restapi's certificate and password.
ctl:
  cacert: $ca
  certfile: $h/cert.pem
  keyfile: $h/key.pem"
  pg_tls="    ssl: \"on\"
    ssl_cert_file: $h/cert.pem
    ssl_key_file: $h/key.pem
    # libpq 15, psycopg2 and postgres-nio (BoringSSL) all speak TLS 1.3.
    ssl_min_protocol_version: TLSv1.3"
  if [ "$DB_TLS" = no ]; then
    ssl="sslmode: disable" restapi_tls="  # no TLS (DB_TLS=no)" ctl_tls="" pg_tls="    ssl: \"off\"" hba=host
  fi
  mkdir -p "$dir/$name/data" "$dir/$name/socket"
  chown -R "$user" "$dir/$name"; chmod 700 "$dir/$name/data" "$dir/$name/socket"
  ( umask 077; cat > "$dir/$name.yml" ) <<YML
scope: bramble
namespace: /bramble/
name: $name
restapi:
  listen: $addr:$api
  connect_address: $addr:$api
$restapi_tls
  authentication: {username: patroni, password: "$(cat "$dir/patroni-api-password")"}
$ctl_tls
etcd3:
  hosts: $(etcd_hosts)
  protocol: https
  cacert: $ca
  cert: $h/etcd-client-cert.pem
  key: $h/etcd-client-key.pem
  # Through etcd's JSON gateway, which takes no identity from certificates: the password.
  username: patroni
  password: "$(cat "$dir/etcd-patroni-password")"
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
  # Patroni's own connections (queries, IDENTIFY_SYSTEM) use the socket, not TCP.
  use_unix_socket: true
  use_unix_socket_repl: true
  data_dir: $dir/$name/data
  bin_dir: $PG_BIN
  pgpass: $dir/$name/pgpass
  # Replication, base backup and pg_rewind reach the other member over TCP: verified TLS.
  authentication:
    replication: {username: replicator, password: "$(cat "$dir/replicator-password")", $ssl}
    superuser: {username: $user, password: "$(cat "$dir/superuser-password")", $ssl}
    rewind: {username: $user, password: "$(cat "$dir/superuser-password")", $ssl}
  parameters:
    unix_socket_directories: $dir/$name/socket
$pg_tls
    password_encryption: scram-sha-256
  # A standby's base backup starts with a checkpoint; the default spread one takes minutes.
  basebackup:
    - checkpoint: fast
  # First match wins. TCP: TLS and a SCRAM password, from DB_NET only; anything else is
  # rejected. The socket is trusted: its dir is 0700, so only $user (and root) reach it.
  pg_hba:
    - local all all trust
    - local replication all trust
    - $hba replication replicator $DB_NET scram-sha-256
    - $hba all all $DB_NET scram-sha-256
    - host replication all 0.0.0.0/0 reject
    - host all all 0.0.0.0/0 reject
YML
  chown "$user" "$dir/$name.yml"; chmod 600 "$dir/$name.yml"
}

# etcd authentication, on a healthy etcd before Patroni starts: users root and patroni
# (role patroni: read-write on Patroni's namespace /bramble/). Without it any certificate
# of our CA (the relay's, a node's, the mail host's) would control etcd. Each step is
# skipped if done; passwords go on stdin or in the environment, never in argv.
db_etcd_auth() {  # dir
  local dir=$1 c=(0 --endpoints "$(etcd_client_url 0)")
  # With auth still off etcd ignores the login (a warning on stderr).
  local -x ETCDCTL_USER=root ETCDCTL_PASSWORD; ETCDCTL_PASSWORD=$(cat "$dir/etcd-root-password")
  {
    db_etcdctl "${c[@]}" user get root >/dev/null 2>&1 \
      || db_etcdctl "${c[@]}" user add root --interactive=false < "$dir/etcd-root-password"
    db_etcdctl "${c[@]}" role get patroni >/dev/null 2>&1 || db_etcdctl "${c[@]}" role add patroni
    db_etcdctl "${c[@]}" role grant-permission patroni --prefix=true readwrite /bramble/
    db_etcdctl "${c[@]}" user get patroni >/dev/null 2>&1 \
      || db_etcdctl "${c[@]}" user add patroni --interactive=false < "$dir/etcd-patroni-password"
    db_etcdctl "${c[@]}" user grant-role patroni patroni
    db_etcdctl "${c[@]}" auth enable
  } >/dev/null 2>"$dir/etcd-auth.log" || { cat "$dir/etcd-auth.log" >&2; die "could not enable etcd authentication"; }
  rm -f "$dir/etcd-auth.log"
}

# Starts etcd ×3, then Patroni pg1 (which bootstraps and leads), then pg2; waits for a
# synchronous standby and creates the bramble role and database.
db_start() {
  local dir=$1 user; user=$(pg_user)
  [ -n "${DB_BRAMBLE_PASSWORD:-}" ] || die "DB_BRAMBLE_PASSWORD is not set"
  [ -n "${DB_TLS_DIR:-}" ] && [ -f "$DB_TLS_DIR/ca.crt" ] || die "DB_TLS_DIR (a CA from tls_ca) is not set or has no ca.crt"
  local i
  for i in 0 1 2; do [ -f "$(db_tls_host $i)/cert.pem" ] || die "no certificate $(db_tls_host $i)/cert.pem"; done
  for i in 0 1; do
    as_pg_user test -r "$(db_tls_host $i)/key.pem" || die "$user cannot read $(db_tls_host $i)/key.pem (PostgreSQL needs it, owned by $user, 0600)"
    db_etcd_client_cert $i
  done
  local -x CURL_CA_BUNDLE="$DB_TLS_DIR/ca.crt"  # wait_http_ok's curl trusts our CA
  mkdir -p "$dir"; chmod 711 "$dir"
  echo "$DB_TLS_DIR" > "$dir/tls-dir"
  ( umask 077; local f
    for f in replicator-password superuser-password patroni-api-password etcd-root-password etcd-patroni-password; do
      [ -f "$dir/$f" ] || random_token > "$dir/$f"
    done )

  local cluster="" token h; token="bramble-$(random_token | head -c 8)"
  for i in 0 1 2; do cluster+="${cluster:+,}e$i=$(etcd_peer_url $i)"; done
  say "starting etcd ×3 ($(etcd_urls))"
  for i in 0 1 2; do
    mkdir -p "$dir/etcd$i"; chmod 700 "$dir/etcd$i"
    h=$(db_tls_host $i)
    # Mutual TLS for clients and peers: etcd accepts only certificates of our CA.
    setsid $(netns_exec "${ETCD_NS[$i]}") etcd --name "e$i" --data-dir "$dir/etcd$i" \
      --listen-client-urls "$(etcd_client_url $i)" --advertise-client-urls "$(etcd_client_url $i)" \
      --listen-peer-urls "$(etcd_peer_url $i)" --initial-advertise-peer-urls "$(etcd_peer_url $i)" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "$token" --listen-metrics-urls "" \
      --cert-file "$h/cert.pem" --key-file "$h/key.pem" --trusted-ca-file "$DB_TLS_DIR/ca.crt" --client-cert-auth \
      --peer-cert-file "$h/cert.pem" --peer-key-file "$h/key.pem" --peer-trusted-ca-file "$DB_TLS_DIR/ca.crt" \
      --peer-client-cert-auth --cipher-suites "$ETCD_CIPHERS" \
      </dev/null >"$dir/etcd$i.log" 2>&1 & echo $! > "$dir/etcd$i.pid"
  done
  i=0
  # (Once auth is on, a health check without a user still passes: etcdctl counts
  # "permission denied" as healthy.)
  until db_etcdctl 0 --endpoints "$(etcd_urls)" endpoint health >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { tail -5 "$dir"/etcd*.log >&2; die "etcd did not become healthy"; }; sleep 0.2
  done
  db_etcd_auth "$dir"

  # The password's SCRAM verifier reaches psql on stdin (a quoted here-document): the
  # password is in no argument list and no SQL text; the script is readable by $user only.
  local pw_sql; pw_sql=$(printf '%s\n' "$DB_BRAMBLE_PASSWORD" | scram_verifier)
  ( umask 077; cat > "$dir/post-bootstrap.sh" <<SH
#!/bin/sh
# Patroni runs this once on the first primary, with a connection string (the socket).
set -e
psql "\$1" -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE ROLE bramble LOGIN PASSWORD '$pw_sql';
CREATE DATABASE bramble OWNER bramble;
SQL
SH
  )
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
  local DB_TLS_DIR=${DB_TLS_DIR:-$(cat "$dir/tls-dir" 2>/dev/null || true)}
  members=$(for i in 0 1; do
    local role pid ppid
    role=$(run_in "${PG_NS[$i]}" curl -fsS --max-time 1 --cacert "$DB_TLS_DIR/ca.crt" "$(patroni_url $i)/patroni" 2>/dev/null | jq -r '.role // "unknown"' 2>/dev/null || true)
    pid=$(head -1 "$dir/${DB_MEMBERS[$i]}/data/postmaster.pid" 2>/dev/null || true)
    ppid=$(cat "$dir/${DB_MEMBERS[$i]}.patroni.pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || pid=null; [[ $ppid =~ ^[0-9]+$ ]] || ppid=null
    jq -n --arg name "${DB_MEMBERS[$i]}" --arg role "${role:-unreachable}" --arg api_url "$(patroni_url $i)" --argjson pid "$pid" \
      --argjson patroni_pid "$ppid" --arg host "${PG_ADDR[$i]}" --argjson port $((PG_PORT + i)) \
      '{name: $name, role: $role, api_url: $api_url, pid: $pid, patroni_pid: $patroni_pid, host: $host, port: $port}'
  done | jq -s .)
  etcd=$(for i in 0 1 2; do
    local healthy=false pid
    db_etcdctl $i --endpoints "$(etcd_client_url $i)" --dial-timeout 1s endpoint health >/dev/null 2>&1 && healthy=true
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
# departed replica); stopping the replica first measured 7 s. etcd: the followers together,
# then the leader, which then has no peer to hand its leadership to and stops at once
# (0.8 s in all). All three at once made the leader wait for a transfer that cannot happen
# (5 s, then SIGKILL); one after the other, each waits ~1 s for its live peers' TLS
# connections (2.3 s). If the leader is unknown they stop one after the other.
db_stop() {
  local dir=$1 name i pids=() leader=""
  [ -d "$dir" ] || return 0
  local DB_TLS_DIR=${DB_TLS_DIR:-$(cat "$dir/tls-dir" 2>/dev/null || true)}
  for name in "${DB_MEMBERS[@]}"; do pids+=("$(cat "$dir/$name.patroni.pid" 2>/dev/null || true)"); done
  stop_pids 15 "${pids[@]}"
  pids=()
  for name in "${DB_MEMBERS[@]}"; do pids+=("$(head -1 "$dir/$name/data/postmaster.pid" 2>/dev/null || true)"); done
  stop_pids 10 "${pids[@]}"
  for i in 0 1 2; do
    local pid; pid=$(cat "$dir/etcd$i.pid" 2>/dev/null || true)
    [ -n "$pid" ] && alive_pid "$pid" || continue
    # endpoint status: "URL, ID, version, size, IS-LEADER, ..."
    db_etcdctl $i --endpoints "$(etcd_client_url $i)" --dial-timeout 1s endpoint status 2>/dev/null \
      | awk -F', ' '{ l = $5 == "true" } END { exit !l }' && leader=$i && break
  done
  if [ -n "$leader" ]; then
    pids=(); for i in 0 1 2; do [ "$i" = "$leader" ] || pids+=("$(cat "$dir/etcd$i.pid" 2>/dev/null || true)"); done
    stop_pids 5 "${pids[@]}"
    stop_pids 5 "$(cat "$dir/etcd$leader.pid" 2>/dev/null || true)"
  else
    for i in 0 1 2; do stop_pids 5 "$(cat "$dir/etcd$i.pid" 2>/dev/null || true)"; done
  fi
  return 0
}
