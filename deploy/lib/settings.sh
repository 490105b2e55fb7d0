# deploy/cluster's settings: where state lives, the hosts' addresses and namespaces, the
# ports, and the questions every command asks (is it up, is a process alive). Sourced
# by deploy/cluster after scripts/lib.sh.

RUN="${BRAMBLE_RUN_DIR:-$BRAMBLE_ROOT/.run}"
PREFIX=${BRAMBLE_DEPLOY_PREFIX:-bramble}
NET=${BRAMBLE_DEPLOY_NET:-10.231.7}
ETCD_PORT=${BRAMBLE_ETCD_PORT:-23790}
PG_PORT=${BRAMBLE_PG_PORT:-15432}
API_PORT=${BRAMBLE_PATRONI_PORT:-8008}
DEVICE_PORT=${BRAMBLE_RELAY_DEVICE_PORT:-4101}
SRP_PORT=${BRAMBLE_RELAY_SRP_PORT:-3101}
RELAY_HTTP_PORT=${BRAMBLE_RELAY_HTTP_PORT:-4180}
NODE_A_PORT=${BRAMBLE_NODE_HTTP_PORT:-8080}
NODE_B_PORT=${BRAMBLE_NODE_B_HTTP_PORT:-8081}
SMTP_PORT=${BRAMBLE_SMTP_PORT:-2525}
IMAP_PORT=${BRAMBLE_IMAP_PORT:-1143}
LMTP_PORT=${BRAMBLE_LMTP_PORT:-2424}
SUBMISSION_PORT=${BRAMBLE_SUBMISSION_PORT:-2465}
XMPP_PORT=${BRAMBLE_XMPP_PORT:-5223}
PROMETHEUS_PORT=${BRAMBLE_PROMETHEUS_PORT:-9090}
CONFIG=${BRAMBLE_BUILD:-release}
SRP_ID=bramble
HOSTS=(db1 db2 db3 relay node-a node-b client mail im monitoring)
declare -A OCTET=([db1]=11 [db2]=12 [db3]=13 [relay]=20 [node-a]=21 [node-b]=22 [client]=30 [mail]=40 [im]=50 [monitoring]=60)
DEMO=("demo1@example.test 2A00F00D" "demo2@example.test 2A00F00E")
# Every demo user has a mailbox on the mail host; demo3 and demo4 have no device yet.
MAIL_USERS=(demo1@example.test demo2@example.test demo3@example.test demo4@example.test)
# More mailboxes, mbench1…mbenchN (the mail benchmark watches 1,000): BRAMBLE_MAIL_EXTRA_USERS=N.
[[ ${BRAMBLE_MAIL_EXTRA_USERS:-0} =~ ^[0-9]+$ ]] && [ "${BRAMBLE_MAIL_EXTRA_USERS:-0}" -le 10000 ] \
  || die "BRAMBLE_MAIL_EXTRA_USERS must be 0…10000"
for ((i = 1; i <= ${BRAMBLE_MAIL_EXTRA_USERS:-0}; i++)); do MAIL_USERS+=("mbench$i@example.test"); done
# The IM host's accounts (scripts/im.sh's defaults: demo1…demo4, whose JIDs are their
# e-mail addresses, and im-sender, the drills' XMPP client); more, imbench1…imbenchN (the
# IM benchmark's 1,000, sharing one password): BRAMBLE_IM_EXTRA_USERS=N.
IM_EXTRA_USERS=${BRAMBLE_IM_EXTRA_USERS:-0}
[[ $IM_EXTRA_USERS =~ ^[0-9]+$ ]] && [ "$IM_EXTRA_USERS" -le 10000 ] || die "BRAMBLE_IM_EXTRA_USERS must be 0…10000"
# The processes the supervisor restarts after a crash (deploy/lib/supervise).
SUPERVISED=(relay node-a node-b)

[ ${#PREFIX} -le 8 ] && [[ $PREFIX =~ ^[a-z][a-z0-9]*$ ]] || die "BRAMBLE_DEPLOY_PREFIX must be 1–8 lower-case letters or digits"
[[ $NET =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "BRAMBLE_DEPLOY_NET must be the first three octets of a /24, e.g. 10.231.7"

# The mode of a running cluster is fixed in its state; a new one is chosen in cmd_up.
MODE=$(cat "$RUN/mode" 2>/dev/null || echo "${BRAMBLE_DEPLOY_HOSTS:-}")
addr() { if [ "$MODE" = netns ]; then echo "$NET.${OCTET[$1]}"; else echo 127.0.0.1; fi; }
ns() { if [ "$MODE" = netns ]; then echo "$PREFIX-$1"; fi; }
node_port() { case "$1" in node-a) echo "$NODE_A_PORT" ;; node-b) echo "$NODE_B_PORT" ;; *) die "no node '$1' (node-a or node-b)" ;; esac; }
# TLS on every link (yes), or none where Bramble's own links and the database's and mail
# host's are concerned (no: BRAMBLE_DEPLOY_TLS=no, only to measure what TLS costs, `make
# bench`; etcd keeps its TLS). Fixed in a running cluster's state.
TLS_MODE=$(cat "$RUN/tls-mode" 2>/dev/null || echo "${BRAMBLE_DEPLOY_TLS:-yes}")
[ "$TLS_MODE" = yes ] || [ "$TLS_MODE" = no ] || die "BRAMBLE_DEPLOY_TLS must be yes or no"
DB_TLS=$TLS_MODE MAIL_TLS=$TLS_MODE IM_TLS=$TLS_MODE
scheme() { [ "$TLS_MODE" = yes ] && echo https || echo http; }
node_url() { echo "$(scheme)://$(addr "$1"):$(node_port "$1")"; }
relay_health_url() { echo "$(scheme)://$(addr relay):$RELAY_HTTP_PORT/health"; }
# A daemon's TLS settings for its host's certificate, or the explicit plaintext switch.
tls_settings() {  # HOST
  if [ "$TLS_MODE" = yes ]; then
    printf 'tls-ca = %s\ntls-cert = %s\ntls-key = %s\n' "$TMP/tls/ca.crt" "$TMP/tls/$1/cert.pem" "$TMP/tls/$1/key.pem"
  else
    echo "plaintext = yes"
  fi
}
# What a device or the CLI needs to reach a TLS (or a plain) relay or node.
client_tls_flag() { if [ "$TLS_MODE" = yes ]; then echo "--ca-file $TMP/tls/ca.crt"; else echo "--plaintext"; fi; }

# The mail host for scripts/mail.sh: its address and namespace, who may send through it,
# and the nodes its notifications of new mail go to.
set_mail_host() {
  MAIL_ADDR=$(addr mail) MAIL_NS=$(ns mail)
  MAIL_NOTIFY_URLS=("$(node_url node-a)/mail/notify" "$(node_url node-b)/mail/notify")
  MAIL_TLS_CA=${TMP:+$TMP/tls/ca.crt} MAIL_TLS_CERT=${TMP:+$TMP/tls/mail/cert.pem} MAIL_TLS_KEY=${TMP:+$TMP/tls/mail/key.pem}
  if [ "$MODE" = netns ]; then MAIL_CLIENT_NET="$NET.0/24"; else MAIL_CLIENT_NET=127.0.0.0/8; fi
}

# The IM host for scripts/im.sh: its address, namespace and certificate.
set_im_host() {
  IM_ADDR=$(addr im) IM_NS=$(ns im)
  IM_TLS_CA=${TMP:+$TMP/tls/ca.crt} IM_TLS_CERT=${TMP:+$TMP/tls/im/cert.pem} IM_TLS_KEY=${TMP:+$TMP/tls/im/key.pem}
}

# The monitoring host for scripts/monitoring.sh: its address and namespace, and what its
# Prometheus scrapes (each daemon's /metrics, with its host's name as the instance label),
# over TLS verified against the cluster's CA unless the cluster runs without TLS.
set_monitoring_host() {
  MONITORING_ADDR=$(addr monitoring) MONITORING_NS=$(ns monitoring)
  MONITORING_TLS=$TLS_MODE MONITORING_TLS_CA=${TMP:+$TMP/tls/ca.crt}
  MONITORING_TARGETS=("bramble-node node-a $(addr node-a):$NODE_A_PORT" "bramble-node node-b $(addr node-b):$NODE_B_PORT"
    "bramble-relay relay $(addr relay):$RELAY_HTTP_PORT"
    "patroni pg1 $(addr db1):$API_PORT" "patroni pg2 $(addr db2):$((API_PORT + 1))")
}

set_db_hosts() {
  ETCD_ADDR=("$(addr db1)" "$(addr db2)" "$(addr db3)") ETCD_NS=("$(ns db1)" "$(ns db2)" "$(ns db3)")
  PG_ADDR=("$(addr db1)" "$(addr db2)") PG_NS=("$(ns db1)" "$(ns db2)")
  if [ "$MODE" = netns ]; then DB_NET="$NET.0/24"; else DB_NET=127.0.0.1/32; fi
  DB_TLS_DIR=${TMP:+$TMP/tls}
}

# Dies unless a cluster is up; then BIN and TMP are the running cluster's.
require_up() {
  [ -f "$RUN/status.json" ] || die "not up (run \`make up\`)"
  BIN=$(cat "$RUN/bin"); TMP=$(cat "$RUN/tmpdir")
  # curl trusts the cluster's CA for the nodes' and the relay's HTTPS.
  export CURL_CA_BUNDLE=$TMP/tls/ca.crt
}

# The PID in $RUN/NAME.pid (empty if none).
pid_of() { local pid; pid=$(cat "$RUN/$1.pid" 2>/dev/null || true); [[ $pid =~ ^[0-9]+$ ]] && echo "$pid" || true; }
alive() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && alive_pid "$pid"; }
# The mail host runs (or was never started: not root). Its PIDs are its daemons' own pid files.
mail_host_up() {
  [ -f "$RUN/mail-host" ] || return 0
  local tmp d p; tmp=${TMP:-$(cat "$RUN/tmpdir" 2>/dev/null || true)}
  d=$(mail_dovecot_pid "$tmp/mail") p=$(mail_postfix_pid "$tmp/mail")
  [ -n "$d" ] && alive_pid "$d" && [ -n "$p" ] && alive_pid "$p"
}
# The monitoring host runs (or was never started: Prometheus not installed and not root to install it).
monitoring_host_up() {
  [ -f "$RUN/monitoring-host" ] || return 0
  local tmp; tmp=${TMP:-$(cat "$RUN/tmpdir" 2>/dev/null || true)}
  [ -n "$(monitoring_prometheus_pid "$tmp/monitoring")" ]
}
# The IM host runs (or was never started: Prosody not installed and not root to install it).
im_host_up() {
  [ -f "$RUN/im-host" ] || return 0
  local tmp; tmp=${TMP:-$(cat "$RUN/tmpdir" 2>/dev/null || true)}
  [ -n "$(im_prosody_pid "$tmp/im")" ]
}
