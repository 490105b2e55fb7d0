# What a drill reads of the cluster, with jq: the live status (deploy/cluster asks every
# node, Patroni and etcd, so it is read once per phase of a drill, not once per field)
# and the static status file. Sourced by chaos/drill.

live=""
read_live() { live=$("$CLUSTER" status --json); }

# A field of the last live status read: primary|standby (node names), db_leader,
# db_leader_pid, mail_pid (Dovecot's master), NODE_pid.
field() {
  jq -r --arg want "$1" '
    def leader: first(.database[] | select(.role == "master" or .role == "primary" or .role == "leader"));
    if $want == "primary" or $want == "standby" then first(.pair[] | select(.role == $want) | .node) // ""
    elif $want == "db_leader" then leader.name // ""
    elif $want == "db_leader_pid" then leader.pid // ""
    elif $want == "mail_pid" then first(.processes[] | select(.name == "dovecot") | .pid) // ""
    elif ($want | endswith("_pid")) then first(.nodes[] | select(.name == ($want | rtrimstr("_pid"))) | .pid) // ""
    else error("no field \($want)") end' <<< "$live"
}

# What does not change while the cluster runs, from the status file it wrote: mode,
# audit (the relay's audit log), prometheus (its URL; empty without a monitoring host),
# or HOST.address / HOST.namespace.
static() {
  jq -r --arg want "$1" '
    if $want == "mode" then .mode
    elif $want == "audit" then .relay.audit_log
    elif $want == "prometheus" then .monitoring.prometheus // ""
    else ($want | split(".")) as [$host, $key] | first(.hosts[] | select(.name == $host) | .[$key])
    end' "$RUN/status.json"
}
ns_of() { static "$1.namespace"; }
addr_of() { static "$1.address"; }

# True when the last live status shows the cluster settled: one primary and one standby,
# the database with a leader and a replica (both postmasters known), every process
# running.
live_settled() {
  jq -e '([.pair[].role] | sort) == ["primary", "standby"]
    and ([.database[].role] | sort) == ["master", "replica"] and all(.database[]; .pid)
    and all(.processes[]; .alive)' <<< "$live" >/dev/null
}

# True when the standby of the last live status could take over (its /health/ready).
standby_ready() {
  local url; url=$(jq -r 'first(.pair[] | select(.role == "standby") | .node) as $s | first(.nodes[] | select(.name == $s) | .health_url) // ""' <<< "$live")
  [ -n "$url" ] && "$CLUSTER" exec curl -fsS -o /dev/null --max-time 1 "$url/ready" 2>/dev/null
}
