# The monitoring host: Prometheus (Debian's package) scraping the HA pair, the relay, both
# Patroni members and itself, and evaluating the alert rules of deploy/monitoring/, from a
# private config and data directory, started and stopped by PID. Source after lib.sh; used
# by deploy/cluster (on its own host).

ensure_monitoring_packages() {
  [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages: prometheus; install it or run as root"
  say "installing prometheus"
  # No system instance: the packaged service kept from starting (policy-rc.d), as for
  # PostgreSQL, etcd, the mail and the IM host. Bramble's Prometheus never uses /etc/prometheus.
  local added=
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added=1; }
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null
  [ -n "$added" ] && rm -f /usr/sbin/policy-rc.d
  [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || die "Prometheus did not install"
}

# The caller sets, before monitoring_start/monitoring_stop/monitoring_wait_targets:
#   MONITORING_ADDR, MONITORING_NS  the monitoring host's address (Prometheus's web
#                           listener and API, plain HTTP, read-only: no lifecycle or admin
#                           API) and its network namespace ("" = this host)
#   PROMETHEUS_PORT         that listener's port
#   MONITORING_TARGETS      what it scrapes (an array), "JOB INSTANCE HOST:PORT" each; the
#                           instance label is the host's name (node-a, pg1), not its
#                           address, so rules and dashboards read the same on every cluster.
#                           The job `prometheus` (Prometheus itself, instance `monitoring`)
#                           is added here.
#   MONITORING_TLS          yes: every target is https:// verified against MONITORING_TLS_CA
#                           (read by the user Prometheus runs as); no (only for measuring
#                           what TLS costs): http://
# and may set MONITORING_RULES_DIR (the *.rules.yml to load; $BRAMBLE_ROOT/deploy/monitoring).
#
# DIR holds everything: prometheus.yml, rules/ (copies of the rule files taken at start, so
# editing deploy/monitoring does not change a running cluster; restart it to take them),
# data/ (the TSDB, owned by the user Prometheus runs as: `prometheus`, which the package
# creates, when started by root, else the caller), prometheus.pid and prometheus.log.
# Nothing secret is in any of them: /metrics needs no token.
MONITORING_TLS=${MONITORING_TLS:-yes}
MONITORING_RULES_DIR=${MONITORING_RULES_DIR:-$BRAMBLE_ROOT/deploy/monitoring}

monitoring_ports() { echo "$PROMETHEUS_PORT"; }
monitoring_url() { echo "http://$MONITORING_ADDR:$PROMETHEUS_PORT"; }

# The user Prometheus runs as, and the words that switch to it (none when that is the caller).
monitoring_run_user() { if [ "$(id -u)" -eq 0 ]; then echo prometheus; else id -un; fi; }
monitoring_as_user_words() {
  [ "$(id -u)" -eq 0 ] || return 0
  id prometheus >/dev/null 2>&1 || die "no 'prometheus' user; install prometheus"
  echo "setpriv --reuid=prometheus --regid=$(id -g prometheus) --init-groups"
}

# The rule files a start of DIR loaded (its copies), one path a line.
monitoring_rules() { local f; for f in "$1"/rules/*.rules.yml; do [ -f "$f" ] && echo "$f"; done; return 0; }

# Copies the rule files and writes prometheus.yml; promtool checks both before any start.
monitoring_write_config() {
  local dir=$1 user group f entry job instance target scheme tls=""
  user=$(monitoring_run_user); group=$(id -gn "$user")
  [ "${#MONITORING_TARGETS[@]}" -gt 0 ] || die "MONITORING_TARGETS is empty"
  for entry in "${MONITORING_TARGETS[@]}"; do
    read -r job instance target <<< "$entry"
    case "$job" in bramble-node|bramble-relay|patroni) ;; *) die "MONITORING_TARGETS: no job '$job' (bramble-node, bramble-relay, patroni)" ;; esac
    [[ $instance =~ ^[a-z][a-z0-9-]*$ && $target =~ ^[0-9A-Za-z.:-]+$ ]] || die "MONITORING_TARGETS: malformed entry '$entry'"
  done
  mkdir -p "$dir/data" "$dir/rules"
  chmod 711 "$dir"; chmod 755 "$dir/rules"
  chown "$user:$group" "$dir/data"; chmod 750 "$dir/data"
  rm -f "$dir"/rules/*.rules.yml
  for f in "$MONITORING_RULES_DIR"/*.rules.yml; do [ -f "$f" ] && install -m 644 "$f" "$dir/rules/"; done
  if [ "$MONITORING_TLS" = yes ]; then
    [ -r "${MONITORING_TLS_CA:-}" ] || die "the monitoring host needs MONITORING_TLS_CA (the CA its targets' certificates verify against)"
    scheme=https tls="    tls_config:
      ca_file: $MONITORING_TLS_CA"
  else
    scheme=http
  fi
  {
    cat <<CONF
# Written by scripts/monitoring.sh: a private Prometheus for one Bramble cluster. Nothing
# here is read from /etc/prometheus. The jobs and their instance labels are what the rules
# in deploy/monitoring and the dashboard select on: keep them.
global:
  # A drill must see its alert within 15 s of the fault: a sample every 2 s, rules
  # evaluated every 2 s, a scrape given up after 1 s (a hung target is down, not late),
  # leave room for a rule's own \`for:\`.
  scrape_interval: 2s
  evaluation_interval: 2s
  scrape_timeout: 1s
rule_files:
  - $dir/rules/*.rules.yml
scrape_configs:
CONF
    for job in bramble-node bramble-relay patroni; do
      printf '  - job_name: %s\n    scheme: %s\n%s\n    static_configs:\n' "$job" "$scheme" "$tls"
      for entry in "${MONITORING_TARGETS[@]}"; do
        read -r f instance target <<< "$entry"
        [ "$f" = "$job" ] || continue
        printf '      - targets: ["%s"]\n        labels: {instance: %s}\n' "$target" "$instance"
      done
    done
    cat <<CONF
  - job_name: prometheus
    static_configs:
      - targets: ["$MONITORING_ADDR:$PROMETHEUS_PORT"]
        labels: {instance: monitoring}
CONF
  } > "$dir/prometheus.yml.new"
  chmod 644 "$dir/prometheus.yml.new"; mv -f "$dir/prometheus.yml.new" "$dir/prometheus.yml"
  # As the user it runs as: a CA or rule file that user cannot read fails here, not at start.
  $(monitoring_as_user_words) env -i PATH=/usr/bin:/bin LANG=C.UTF-8 /usr/bin/promtool check config "$dir/prometheus.yml" \
    > "$dir/promtool.out" 2>&1 || { cat "$dir/promtool.out" >&2; die "promtool check config failed for $dir/prometheus.yml"; }
}

# Prometheus's PID (from the pid file monitoring_start writes), empty if none; only if that
# PID is still the Prometheus of this DIR (a stale pid file must not name another program).
monitoring_prometheus_pid() {
  local p; p=$(cat "$1/prometheus.pid" 2>/dev/null | tr -d ' \n' || true)
  [[ $p =~ ^[0-9]+$ ]] && alive_pid "$p" && tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$1/prometheus.yml" && echo "$p" || true
}

# Starts Prometheus in the monitoring host's namespace as its user; returns once its
# /-/ready answers (30 s at most: a start that fails or hangs is stopped).
monitoring_start() {
  local dir=$1 pid i t0
  [ -z "$(monitoring_prometheus_pid "$dir")" ] || die "Prometheus already runs for $dir (pid $(monitoring_prometheus_pid "$dir"))"
  mkdir -p "$dir"
  monitoring_write_config "$dir"
  t0=$(date +%s%N)
  # In the foreground: $! is Prometheus itself (ip netns exec, setpriv and env replace themselves).
  setsid $(netns_exec "$MONITORING_NS") $(monitoring_as_user_words) env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME="$dir/data" \
    /usr/bin/prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --storage.tsdb.retention.time=1d --web.listen-address="$MONITORING_ADDR:$PROMETHEUS_PORT" \
    </dev/null >>"$dir/prometheus.log" 2>&1 &
  pid=$!
  echo "$pid" > "$dir/prometheus.pid"
  local ready=no
  for i in $(seq 0 300); do
    run_in "$MONITORING_NS" curl -fsS -o /dev/null --max-time 1 "$(monitoring_url)/-/ready" 2>/dev/null && { ready=yes; break; }
    alive_pid "$pid" || { tail -n 20 "$dir/prometheus.log" >&2; die "Prometheus did not start (its log: $dir/prometheus.log)"; }
    sleep 0.1
  done
  if [ "$ready" = no ]; then
    tail -n 20 "$dir/prometheus.log" >&2
    stop_pids 5 "$pid"
    die "Prometheus is not ready at $(monitoring_url) after 30 s (stopped it)"
  fi
  echo $(( ($(date +%s%N) - t0) / 1000000 )) > "$dir/prometheus.start-ms"
}

# Waits, up to SECONDS, until Prometheus has scraped every target it was given and found it
# up; 1 on time-out, after saying which targets are not up and why.
monitoring_wait_targets() {  # dir seconds
  local dir=$1 i targets="" expected=$(( ${#MONITORING_TARGETS[@]} + 1 ))
  for i in $(seq 1 $(($2 * 5))); do
    targets=$(run_in "$MONITORING_NS" curl -fsS --max-time 1 "$(monitoring_url)/api/v1/targets?state=active" 2>/dev/null || true)
    jq -e --argjson n "$expected" '.data.activeTargets | length == $n and all(.[]; .health == "up")' <<< "$targets" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  if [ -z "$targets" ]; then say "Prometheus ($(monitoring_url)): its API does not answer"; return 1; fi
  say "Prometheus ($(monitoring_url)): not every target is up after $2 s: $(jq -r --argjson n "$expected" '
    .data.activeTargets | [.[] | select(.health != "up") | "\(.labels.job)/\(.labels.instance) \(.health) (\(.lastError))"]
    + (if length != $n then ["\(length) active targets of \($n)"] else [] end) | join("; ")' <<< "$targets")"
  return 1
}

# "UP TOTAL" of the active targets, or nothing when Prometheus does not answer.
monitoring_targets_up() {
  run_in "$MONITORING_NS" curl -fsS --max-time 1 "$(monitoring_url)/api/v1/targets?state=active" 2>/dev/null \
    | jq -r '.data.activeTargets | "\([.[] | select(.health == "up")] | length) \(length)"' 2>/dev/null || true
}

# Stops Prometheus by PID (SIGTERM: it closes its TSDB head; SIGKILL after 10 s) and waits
# until it has exited.
monitoring_stop() {
  local dir=$1 pid
  [ -d "$dir" ] || return 0
  pid=$(monitoring_prometheus_pid "$dir")
  [ -z "$pid" ] || stop_pids 10 "$pid"
  return 0
}
