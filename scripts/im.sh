# The IM host: Prosody (XMPP) serving IM_DOMAIN (the mail domain: a user's JID is their
# e-mail address), from Debian's package with a private config, data, pid file and log in
# one directory, started and stopped by PID. Source after lib.sh; used by
# scripts/im-private (on loopback) and deploy/cluster (on its own host). Facts:
# ../shared/notes/mail-and-xmpp.md.

ensure_im_packages() {
  [ -x /usr/bin/prosody ] && [ -f /usr/lib/prosody/modules/mod_mam/mod_mam.lua ] && command -v python3 >/dev/null 2>&1 && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages: prosody; install it or run as root"
  say "installing prosody"
  # No system instance: the packaged service kept from starting (policy-rc.d), as for
  # PostgreSQL, etcd and the mail host. Bramble's Prosody never uses /etc/prosody.
  local added=
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added=1; }
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prosody python3 >/dev/null
  [ -n "$added" ] && rm -f /usr/sbin/policy-rc.d
  [ -x /usr/bin/prosody ] || die "Prosody did not install"
}

# The caller sets, before im_start/im_stop/im_info_json:
#   IM_ADDR, IM_NS          the IM host's address (XMPP listens there) and its network
#                           namespace ("" = this host)
#   XMPP_PORT               client connections (c2s), TLS from the first byte (XEP-0368
#                           direct TLS; no plaintext port, no STARTTLS)
#   IM_TLS_CERT IM_TLS_KEY  the IM host's certificate and key (PEM); the key is copied
#                           into DIR/tls, 0600, owned by the user Prosody runs as
#   IM_TLS_CA               (for im_info_json only) the CA clients verify it with
#   IM_TLS=no               (only for measuring what TLS costs) plain c2s on XMPP_PORT
# and may set IM_DOMAIN (example.test), IM_USERS (the accounts, every one in IM_DOMAIN;
# default demo1…demo4 and im-sender, the drills' XMPP client; all in one shared roster
# group, "Company", so each sees the others as contacts with presence) and
# IM_EXTRA_USERS=N (imbench1…imbenchN, for the benchmark: not in the group).
#
# Prosody runs as the prosody user (setpriv) when started by root, else as the caller.
# s2s, HTTP and components are off; accounts are internal_hashed (SCRAM-SHA-1); MAM
# (XEP-0313, every message archived for a week), offline storage, stream management
# (XEP-0198), carbons, ping, the shared roster. No connection or rate limit stands in the
# way of 1,000 sessions from one client address (mod_limits is not loaded).
#
# DIR holds everything: prosody.cfg.lua, groups.txt, data/ (Prosody's storage, owned by
# its user), run/prosody.pid, prosody.log, tls/ (its certificate and key), and
# user-passwords ("JID PASSWORD" lines, mode 0600 from creation, owned by the caller):
# each of IM_USERS has a random password; the extra users share one (with one salt, so a
# benchmark client derives its SCRAM key once). The accounts are written as Prosody's own
# files (data/DOMAIN/accounts/USER.dat: salt, iteration_count, stored_key, server_key),
# never through prosodyctl, whose `register` takes the password as an argument.
IM_DOMAIN=${IM_DOMAIN:-example.test}
IM_TLS=${IM_TLS:-yes}
IM_EXTRA_USERS=${IM_EXTRA_USERS:-0}
[ -n "${IM_USERS+x}" ] || IM_USERS=("demo1@$IM_DOMAIN" "demo2@$IM_DOMAIN" "demo3@$IM_DOMAIN" "demo4@$IM_DOMAIN" "im-sender@$IM_DOMAIN")

im_ports() { echo "$XMPP_PORT"; }

# Every account: IM_USERS, then imbench1…imbenchN.
im_all_users() {
  local jid i
  for jid in "${IM_USERS[@]}"; do echo "$jid"; done
  for ((i = 1; i <= IM_EXTRA_USERS; i++)); do echo "imbench$i@$IM_DOMAIN"; done
}

# The user Prosody runs as, and the words that switch to it (none when that is the caller).
im_run_user() { if [ "$(id -u)" -eq 0 ]; then echo prosody; else id -un; fi; }
im_as_user_words() { [ "$(id -u)" -eq 0 ] || return 0; echo "setpriv --reuid=prosody --regid=$(id -g prosody) --init-groups"; }

# Writes the passwords file (once), the accounts Prosody lacks, the groups file and the config.
im_write_config() {
  local dir=$1 jid user group
  user=$(im_run_user); group=$(id -gn "$user")
  [[ $IM_EXTRA_USERS =~ ^[0-9]+$ ]] && [ "$IM_EXTRA_USERS" -le 10000 ] || die "IM_EXTRA_USERS must be 0…10000"
  for jid in "${IM_USERS[@]}"; do
    [ "${jid#*@}" = "$IM_DOMAIN" ] || die "IM user $jid is not in $IM_DOMAIN"
    [[ ${jid%@*} =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "IM user $jid: the local part must be lower-case letters, digits, . _ -"
  done
  mkdir -p "$dir/data" "$dir/run" "$dir/tls"
  chmod 711 "$dir"; chmod 755 "$dir/tls"
  chown "$user:$group" "$dir/data" "$dir/run"; chmod 750 "$dir/data" "$dir/run"
  [ -e "$dir/prosody.log" ] || { touch "$dir/prosody.log"; chmod 640 "$dir/prosody.log"; chown "$user:$group" "$dir/prosody.log"; }
  im_all_users | im_write_accounts "$dir"
  chown -R "$user:$group" "$dir/data"

  # The certificate and a copy of the key the run user can read (0600, its own).
  local ssl="" c2s
  if [ "$IM_TLS" = no ]; then
    c2s="c2s_ports = { $XMPP_PORT }
c2s_direct_tls_ports = {}
-- No TLS (IM_TLS=no): only for measuring what TLS costs.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true"
  else
    ( umask 077; cp "$IM_TLS_KEY" "$dir/tls/key.pem.new" )
    chown "$user:$group" "$dir/tls/key.pem.new"; mv -f "$dir/tls/key.pem.new" "$dir/tls/key.pem"
    cp "$IM_TLS_CERT" "$dir/tls/cert.pem"; chmod 644 "$dir/tls/cert.pem"
    ssl="ssl = { certificate = \"$dir/tls/cert.pem\"; key = \"$dir/tls/key.pem\"; protocol = \"tlsv1_2+\" }"
    c2s="-- Clients speak TLS from the first byte (XEP-0368); there is no plaintext port.
c2s_direct_tls_ports = { $XMPP_PORT }
c2s_ports = {}
c2s_require_encryption = true"
  fi

  # The shared roster: every one of IM_USERS sees the others (subscription both).
  { echo "[Company]"; for jid in "${IM_USERS[@]}"; do echo "$jid=${jid%@*}"; done; } > "$dir/groups.txt"
  chmod 644 "$dir/groups.txt"

  cat > "$dir/prosody.cfg.lua" <<CONF
-- Written by scripts/im.sh: a private Prosody for $IM_DOMAIN. Nothing here is read from
-- /etc/prosody, and nothing of a system instance is used.
pidfile = "$dir/run/prosody.pid"
data_path = "$dir/data"
certificates = "$dir/tls"
log = { { levels = { min = "info" }; to = "file"; filename = "$dir/prosody.log" } }
daemonize = false
interfaces = { "$IM_ADDR" }
$c2s
legacy_ssl_ports = {}
s2s_ports = {}
http_ports = {}
https_ports = {}
component_ports = {}
$ssl
modules_enabled = {
  "roster"; "saslauth"; "tls"; "disco"; "ping"; "presence";
  "mam"; "offline"; "smacks"; "carbons"; "groups";
}
-- No server-to-server: this host talks only to its own clients. mod_limits is not loaded.
modules_disabled = { "s2s"; "s2s_auth_certs"; "dialback" }
authentication = "internal_hashed"
storage = "internal"
-- Every message archived (XEP-0313) for a week; a query may ask for up to 500 at once.
default_archive_policy = true
archive_expires_after = "1w"
max_archive_query_results = 500
groups_file = "$dir/groups.txt"
c2s_stanza_size_limit = 256*1024
-- 1,000 sessions from one client address at once, and a steady message rate: a deep
-- accept queue, and a stream-management queue that does not end a session whose
-- acknowledgements lag behind a burst.
network_settings = { tcp_backlog = 1024 }
smacks_max_queue_size = 10000
VirtualHost "$IM_DOMAIN"
$ssl
CONF
  chmod 644 "$dir/prosody.cfg.lua"
}

# The passwords file (once; a restart keeps it, and only adds the accounts it lacks) and
# DATA/DOMAIN/accounts/USER.dat for each account that has none, as mod_auth_internal_hashed
# stores it: SCRAM-SHA-1 at 10,000 iterations (its default), the salt a UUID's text as
# Prosody makes it, the file named as util.datamanager encodes names (every
# non-alphanumeric byte as %xx). The JIDs come on stdin; the passwords never leave the
# 0600 file (no argument, no output). The extra users (imbench*) share one password and
# one salt: a benchmark client derives their SCRAM key once.
im_write_accounts() {
  local dir=$1
  local script
  script=$(cat <<'PY'
import hashlib, hmac, os, re, secrets, string, sys, uuid
passwords_file, data, domain = sys.argv[1:4]
token = lambda: "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
bench = lambda jid: re.fullmatch(r"imbench[0-9]+@.*", jid) is not None
known = {}
if os.path.exists(passwords_file):
    with open(passwords_file) as f:
        known = dict(line.split() for line in f if line.strip())
shared = next((pw for jid, pw in known.items() if bench(jid)), None) or token()
new = [jid for jid in sys.stdin.read().split() if jid not in known]
os.umask(0o077)
with os.fdopen(os.open(passwords_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as f:
    for jid in new:
        known[jid] = shared if bench(jid) else token()
        f.write(f"{jid} {known[jid]}\n")
enc = lambda s: re.sub(rb"[^A-Za-z0-9]", lambda m: b"%%%02x" % m.group()[0], s.encode()).decode()
accounts = os.path.join(data, enc(domain), "accounts")
os.makedirs(accounts, exist_ok=True)
iterations, derived = 10000, {}
def keys(password, salt):
    if (password, salt) not in derived:
        salted = hashlib.pbkdf2_hmac("sha1", password.encode(), salt.encode(), iterations)
        client = hmac.new(salted, b"Client Key", "sha1").digest()
        server = hmac.new(salted, b"Server Key", "sha1").digest()
        derived[(password, salt)] = (hashlib.sha1(client).hexdigest(), server.hex())
    return derived[(password, salt)]
shared_salt = str(uuid.uuid4())
for jid, password in known.items():
    local, host = jid.split("@")
    if host != domain:
        sys.exit(f"{jid} is not in {domain}")
    path = os.path.join(accounts, enc(local) + ".dat")
    if os.path.exists(path):
        continue
    salt = shared_salt if bench(jid) else str(uuid.uuid4())
    stored, server = keys(password, salt)
    with open(path + "~", "w") as out:
        out.write('return {\n\t["iteration_count"] = %d;\n\t["salt"] = "%s";\n\t["server_key"] = "%s";\n\t["stored_key"] = "%s";\n};\n'
                  % (iterations, salt, server, stored))
    os.rename(path + "~", path)
PY
)
  python3 -c "$script" "$dir/user-passwords" "$dir/data" "$IM_DOMAIN"
}

# Prosody's PID (from its own pid file), empty if none; only if that PID is still the
# Prosody of this DIR (a stale pid file must not name another program).
im_prosody_pid() {
  local p; p=$(cat "$1/run/prosody.pid" 2>/dev/null | tr -d ' \n' || true)
  [[ $p =~ ^[0-9]+$ ]] && alive_pid "$p" && tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$1/prosody.cfg.lua" && echo "$p" || true
}

# True once something accepts connections on ADDR:PORT (asked from the IM host).
im_port_open() { run_in "$IM_NS" bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# Starts Prosody in the IM host's namespace as its user; returns when it listens and has
# written its pid file. A start that fails or hangs is stopped (a failed start can leave a
# process holding the port).
im_start() {
  local dir=$1 i t0 pid
  [ "$IM_TLS" = no ] || { [ -r "${IM_TLS_CERT:-}" ] && [ -r "${IM_TLS_KEY:-}" ]; } \
    || die "the IM host needs IM_TLS_CERT and IM_TLS_KEY (its certificate and key)"
  [ -z "$(im_prosody_pid "$dir")" ] || die "Prosody already runs for $dir (pid $(im_prosody_pid "$dir"))"
  mkdir -p "$dir"
  im_write_config "$dir"
  rm -f "$dir/run/prosody.pid"
  # Its own word that it listens (something else may hold the port): in what it logs from now.
  local svc=c2s_direct_tls from
  [ "$IM_TLS" = no ] && svc=c2s
  from=$(( $(wc -l < "$dir/prosody.log") + 1 ))
  t0=$(date +%s%N)
  # In the foreground (-F): $! is Prosody itself (ip netns exec, setpriv and env replace themselves).
  setsid $(netns_exec "$IM_NS") $(im_as_user_words) env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME="$dir/data" \
    /usr/bin/prosody --config "$dir/prosody.cfg.lua" -F </dev/null >>"$dir/prosody.out" 2>&1 &
  pid=$!
  for i in $(seq 0 200); do
    [ "$(im_prosody_pid "$dir")" = "$pid" ] && tail -n "+$from" "$dir/prosody.log" | grep -qF "Activated service '$svc' on [$IM_ADDR]:$XMPP_PORT" \
      && im_port_open "$IM_ADDR" "$XMPP_PORT" && break
    alive_pid "$pid" && ! tail -n "+$from" "$dir/prosody.log" | grep -q "Failed to open server port" \
      || { tail -n 20 "$dir/prosody.out" "$dir/prosody.log" >&2 2>/dev/null; stop_pids 5 "$pid"; die "Prosody did not start"; }
    sleep 0.05
  done
  if [ "$i" -ge 200 ]; then
    tail -n 20 "$dir/prosody.out" "$dir/prosody.log" >&2 2>/dev/null
    stop_pids 5 "$pid"
    die "Prosody does not listen on $IM_ADDR:$XMPP_PORT (stopped it)"
  fi
  echo $(( ($(date +%s%N) - t0) / 1000000 )) > "$dir/prosody.start-ms"
}

# Stops Prosody by PID (SIGTERM: it closes its sessions and stores what it holds; SIGKILL
# after 10 s) and waits until it has exited.
im_stop() {
  local dir=$1 pid
  [ -d "$dir" ] || return 0
  pid=$(im_prosody_pid "$dir")
  [ -z "$pid" ] || stop_pids 10 "$pid"
  return 0
}

# JSON (jq): where the IM host is, its accounts and where their passwords are (the path,
# never the contents).
im_info_json() {
  local dir=$1
  jq -n --arg domain "$IM_DOMAIN" --arg xmpp "$IM_ADDR:$XMPP_PORT" --arg passwords "$dir/user-passwords" \
    --argjson users "$(im_all_users | jq -R . | jq -s .)" --arg tls "$IM_TLS" --arg ca_file "${IM_TLS_CA:-}" \
    --argjson pid "$(im_prosody_pid "$dir" | grep . || echo null)" --arg log "$dir/prosody.log" '
    {domain: $domain, xmpp: $xmpp, users: $users, user_passwords_file: $passwords, prosody_pid: $pid, log: $log,
     tls: (if $tls == "no" then {xmpp: "plain"} else {xmpp: "direct TLS", ca_file: $ca_file} end)}'
}
