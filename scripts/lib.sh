# Shared helpers for Bramble's scripts. Source it; do not run it.

BRAMBLE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

say() { printf '%s\n' "bramble: $*" >&2; }
die() { printf '%s\n' "bramble: error: $*" >&2; exit 1; }

# Installs the Debian packages the project needs that are missing (apt-get update once).
ensure_packages() {
  local missing=()
  [ -x "$PG_BIN/initdb" ] || missing+=(postgresql-15)
  [ -x /usr/bin/psql ] || missing+=(postgresql-client-15)
  dpkg -s zlib1g-dev >/dev/null 2>&1 || missing+=(zlib1g-dev)
  dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
  command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # the private CA (deploy/lib/tls.sh, the tests' TestCA)
  command -v jq >/dev/null 2>&1 || missing+=(jq)  # deploy/cluster's status JSON, chaos/drill's reading of it
  command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)  # `systemd-analyze verify` of deploy/systemd in make test
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]}; install them (apt-get install -y ${missing[*]}) or run as root"
  say "installing ${missing[*]}"
  # Keep Debian's packaged PostgreSQL cluster from starting: Bramble runs its own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    local added_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  [ -n "${added_policy:-}" ] && rm -f /usr/sbin/policy-rc.d
  [ -x "$PG_BIN/initdb" ] || die "PostgreSQL 15 did not install ($PG_BIN/initdb missing)"
}

# The unprivileged user PostgreSQL runs as (it refuses root).
pg_user() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' user; install postgresql-15"
    echo postgres
  else
    id -un
  fi
}

# PostgreSQL and Patroni refuse root: as root, the words that switch to the postgres
# user; otherwise none (they run as the caller).
as_pg_user_words() {
  [ "$(id -u)" -eq 0 ] || return 0
  local user; user=$(pg_user)
  echo "setpriv --reuid=$user --regid=$(id -g "$user") --init-groups"
}

# Runs a command as the PostgreSQL user (as root, with a clean environment).
as_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then
    $(as_pg_user_words) env -i PATH=/usr/bin:/bin LANG=C.UTF-8 LC_ALL=C.UTF-8 "$@"
  else
    "$@"
  fi
}

# True if something listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The words that run a command in namespace NS (none when NS is empty), for
# `setsid $(netns_exec NS) CMD &`: `ip netns exec` replaces itself with CMD, so $! is
# CMD's PID either way.
netns_exec() { [ -z "$1" ] || echo "ip netns exec $1"; }

# Runs a command in namespace NS, or here when NS is empty.
run_in() { local ns=$1; shift; if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi; }

# Waits until URL answers 200 (asked from namespace NS, if given), up to SECONDS; 1 on time-out.
wait_http_ok() {
  local url=$1 seconds=$2 ns=${3:-} i=0
  while [ $i -lt $((seconds * 10)) ]; do
    run_in "$ns" curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

# Running, and not a zombie (a killed process whose parent is gone waits for init to
# reap it; it runs nothing).
alive_pid() {
  local stat state
  if [ -d /proc ]; then
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    state=${stat##*) }; state=${state%% *}
  else
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  fi
  [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

# Stops every PID at once: SIGTERM (and SIGCONT, as a paused process cannot act on it),
# then SIGKILL to those still running after SECONDS; returns once all are gone (a
# killed process is waited for up to 2 s more).
stop_pids() {
  local seconds=$1; shift
  local pid pids=() left i=0
  for pid in "$@"; do [ -n "$pid" ] && alive_pid "$pid" && pids+=("$pid"); done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  kill -CONT "${pids[@]}" 2>/dev/null || true
  while :; do
    left=()
    for pid in "${pids[@]}"; do alive_pid "$pid" && left+=("$pid"); done
    pids=("${left[@]}")
    [ ${#pids[@]} -gt 0 ] || return 0
    [ $i -lt $((seconds * 10)) ] || break
    sleep 0.1; i=$((i + 1))
  done
  say "pid(s) ${pids[*]} still running after ${seconds}s: SIGKILL"
  kill -KILL "${pids[@]}" 2>/dev/null || true
  for i in $(seq 1 20); do
    left=()
    for pid in "${pids[@]}"; do alive_pid "$pid" && left+=("$pid"); done
    [ ${#left[@]} -gt 0 ] || return 0
    sleep 0.1
  done
}

# Stops PID with SIGTERM, then SIGKILL after SECONDS.
stop_pid() { stop_pids "${2:-5}" "$1"; }

random_token() { head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 40; }
random_key() { head -c 32 /dev/urandom | base64; }

# The SCRAM-SHA-256 verifier (RFC 5802/7677, as PostgreSQL stores it) of the password on
# stdin: `ALTER ROLE … PASSWORD 'SCRAM-SHA-256$…'` then keeps the password itself out of
# SQL text (pg_stat_activity, the server's log). The password is never an argument.
scram_verifier() {
  /usr/bin/python3 -c '
import base64, hashlib, hmac, os, sys
password = sys.stdin.readline().rstrip("\n").encode()
salt, iterations = os.urandom(16), 4096
salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
client = hmac.new(salted, b"Client Key", "sha256").digest()
server = hmac.new(salted, b"Server Key", "sha256").digest()
b64 = lambda b: base64.b64encode(b).decode()
print(f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(hashlib.sha256(client).digest())}:{b64(server)}")'
}
