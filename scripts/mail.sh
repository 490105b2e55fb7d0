# The mail host: Postfix (SMTP) delivering MAIL_DOMAIN to Dovecot (IMAP, LMTP) over LMTP,
# from Debian's packages with private configs, maildirs and state in one directory, every
# process started and stopped by PID. Source after lib.sh; used by scripts/mail-private
# (on loopback) and deploy/cluster (on its own host). Facts: ../shared/notes/mail-and-xmpp.md.

ensure_mail_packages() {
  local missing=()
  [ -x /usr/sbin/dovecot ] || missing+=(dovecot-core)
  [ -x /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
  [ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
  [ -x /usr/sbin/postfix ] || missing+=(postfix)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]}; install them or run as root"
  say "installing ${missing[*]}"
  # No system instance: Postfix unconfigured (its debconf question answered), and the
  # packaged services kept from starting (policy-rc.d), as for PostgreSQL and etcd.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  local added=
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added=1; }
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$added" ] && rm -f /usr/sbin/policy-rc.d
  [ -x /usr/lib/dovecot/lmtp ] && [ -x /usr/sbin/postfix ] || die "Dovecot or Postfix did not install"
}

# The caller sets, before mail_start/mail_stop/mail_info_json:
#   MAIL_ADDR, MAIL_NS      the mail host's address (SMTP and IMAP listen there) and its
#                           network namespace ("" = this host)
#   MAIL_CLIENT_NET         CIDR Postfix relays for (mynetworks): only to MAIL_DOMAIN anyway
#   SMTP_PORT IMAP_PORT LMTP_PORT   SMTP and IMAP are TLS from the first byte (Postfix's
#                           wrapper mode, Dovecot's imaps: RFC 8314 implicit TLS; no
#                           plaintext port); LMTP listens on 127.0.0.1 of the mail host only
#   SUBMISSION_PORT         (optional; none if empty) mail submission, TLS from the first
#                           byte too, only after AUTH PLAIN through Dovecot: a user with
#                           their password, or the service account as a user (authzid =
#                           the user); From must be the authenticated user, recipients in
#                           MAIL_DOMAIN; Postfix files a copy in the sender's Sent folder
#                           (a Bcc to USER+Sent@, delivered there by LMTP), in the same
#                           queue file as the message: the copy exists once the 250 came
#   MAIL_TLS_CERT MAIL_TLS_KEY  the mail host's certificate and key (PEM; the key 0600,
#                           read by both masters as root before they drop privileges)
#   MAIL_TLS_CA             the private CA: Dovecot's HTTP client trusts it for the nodes'
#                           https:// notify URLs
#   MAIL_TLS=no             (only for measuring what TLS costs: `make bench`) plain SMTP and
#                           IMAP on those ports instead
#   MAIL_SUBMISSION_SIZE_LIMIT  the largest message the submission service takes (bytes,
#                           EHLO SIZE; 50 MiB as the public port unless the caller lowers it:
#                           scripts/mail-private for the tests)
#   MAIL_SUBMISSION_POLICY  (optional) a Postfix policy service (inet:HOST:PORT) the
#                           submission service asks at the end of each message, before it
#                           answers the final dot: the tests hold that answer with it to
#                           kill a node while its mail is in doubt. Its smtpd_timeout is
#                           5 s, which the nodes' mail-submission-timeout-ms must cover.
# and may set MAIL_DOMAIN (example.test), MAIL_USERS (the mailboxes, every one in
# MAIL_DOMAIN; default demo1…demo4), MAIL_SERVICE_USER (bramble-service) and
# MAIL_NOTIFY_URLS (the nodes' `/mail/notify` URLs: an array; none by default).
#
# New mail: Dovecot's push_notification plugin runs push.lua (Lua driver, from
# dovecot-core) at each LMTP delivery to an INBOX, and at each change made over IMAP
# (flags set or cleared, a mail expunged or moved: reconciliation), which POSTs ?user=EMAIL with the
# notify token to the node that took the last one, then the others (timeout 500 ms
# each), until one answers 202 (the primary). A notification that fails is dropped, not
# queued: it is only a trigger, the nodes' sweep is the truth.
#
# DIR holds everything: dovecot.conf and postfix/etc/ (configs), dovecot/ (passwd-files, base
# and state dirs), mail/ (maildirs, owned by the mail user), postfix/queue and /data, the
# logs (dovecot.log, postfix.log), and three files of secrets, mode 0600 from creation:
# user-passwords ("EMAIL PASSWORD" lines), service-password (the Dovecot master user's
# password) and notify-token (the bearer token of the notifications; push.lua holds it
# too, mode 0640, group mail). Dovecot's passwd-files hold only hashes (mode 0640, group
# dovecot): SHA512-CRYPT for the users, salted SHA-512 for the service account's random token.
MAIL_DOMAIN=${MAIL_DOMAIN:-example.test}
MAIL_TLS=yes  # deploy/cluster sets it after sourcing this (BRAMBLE_DEPLOY_TLS); nothing else may
MAIL_SUBMISSION_SIZE_LIMIT=52428800  # scripts/mail-private may lower it after sourcing this
MAIL_SERVICE_USER=${MAIL_SERVICE_USER:-bramble-service}
[ -n "${MAIL_USERS+x}" ] || MAIL_USERS=(demo1@example.test demo2@example.test demo3@example.test demo4@example.test)
[ -n "${MAIL_NOTIFY_URLS+x}" ] || MAIL_NOTIFY_URLS=()

mail_ports() { echo "$SMTP_PORT" "$IMAP_PORT" "$LMTP_PORT" ${SUBMISSION_PORT:-}; }

# The SHA512-CRYPT hash of the password on stdin (doveadm reads it twice from a non-tty
# stdin): the password is never an argument, so never in a process list.
mail_hash() { local pw; IFS= read -r pw; printf '%s\n%s\n' "$pw" "$pw" | doveadm -O pw -s "${1:-SHA512-CRYPT}"; }

# Writes the configs, the passwd-files and the secrets (once: a restart keeps them).
mail_write_config() {
  local dir=$1 email pw
  mkdir -p "$dir/dovecot/run" "$dir/dovecot/state" "$dir/mail" "$dir/postfix/etc" "$dir/postfix/queue" "$dir/postfix/data"
  chmod 711 "$dir" "$dir/dovecot"
  chown postfix "$dir/postfix/data"  # the queue's subdirectories: postfix start makes them
  chown mail:mail "$dir/mail"; chmod 700 "$dir/mail"
  if [ ! -f "$dir/service-password" ]; then
    ( umask 077
      random_token > "$dir/service-password"
      for email in "${MAIL_USERS[@]}"; do
        [ "${email#*@}" = "$MAIL_DOMAIN" ] || die "mailbox $email is not in $MAIL_DOMAIN"
        echo "$email $(random_token)"
      done > "$dir/user-passwords" )
  fi
  [ -f "$dir/notify-token" ] || ( umask 077; random_token > "$dir/notify-token" )
  local plugins="" urls=""
  if [ "${#MAIL_NOTIFY_URLS[@]}" -gt 0 ] && [ -n "${MAIL_NOTIFY_URLS[0]:-}" ]; then
    plugins="mail_plugins = \$mail_plugins mail_lua notify push_notification push_notification_lua"
    urls=$(printf '  "%s",\n' "${MAIL_NOTIFY_URLS[@]}")
    ( umask 027
      cat > "$dir/push.lua" <<LUA
-- Written by scripts/mail.sh: tells the Bramble primary whose INBOX got mail (a trigger;
-- the nodes' watermarks are the truth). The node that took the last notification (202)
-- is asked first; a standby answers 409 and the next is asked. A node that does not
-- answer costs 500 ms, and only until another one takes a notification.
local urls = {
$urls
}
local token = "$(cat "$dir/notify-token")"
local client = nil
local preferred = 1

function script_init()
  -- Dovecot 2.3's Lua HTTP client takes these keys (an unknown key such as "timeout" is
  -- silently ignored): half a second to connect and to answer, per node.
  client = dovecot.http.client({ connect_timeout_msecs = 500, request_timeout_msecs = 500, max_attempts = 1 })
  return 0
end

function dovecot_lua_notify_begin_txn(user)
  return { user = user.username, inbox = false }
end

local function seen(ctx, event)
  if event.mailbox == "INBOX" then ctx.inbox = true end
end
dovecot_lua_notify_event_message_new = seen
dovecot_lua_notify_event_message_append = seen

-- Over IMAP (protocol imap): a mail read, unread, flagged, expunged or moved in any folder
-- is a trigger too, for reconciliation (the devices hear the mail's new state).
local function changed(ctx, event) ctx.inbox = true end
dovecot_lua_notify_event_flags_set = changed
dovecot_lua_notify_event_flags_clear = changed
dovecot_lua_notify_event_message_read = changed
dovecot_lua_notify_event_message_expunge = changed

local function escaped(s)
  return (s:gsub("[^%w%-%._~@]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function dovecot_lua_notify_end_txn(ctx)
  if not ctx.inbox then return end
  for i = 0, #urls - 1 do
    local k = (preferred - 1 + i) % #urls + 1
    local request = client:request({ url = urls[k] .. "?user=" .. escaped(ctx.user), method = "POST" })
    request:add_header("Authorization", "Bearer " .. token)
    if request:submit():status() == 202 then
      preferred = k
      return
    end
  end
end
LUA
    )
    chgrp mail "$dir/push.lua"
  fi
  ( umask 027
    # The service account's password is a random token, not something a person chose:
    # a salted SHA-512 (fast) protects it as well as a slow crypt, and it is checked at
    # every one of the Messaging Agent's logins.
    echo "$MAIL_SERVICE_USER:$(mail_hash SSHA512 < "$dir/service-password")" > "$dir/dovecot/master-users"
    while read -r email pw; do echo "$email:$(printf '%s\n' "$pw" | mail_hash)::::::"; done < "$dir/user-passwords" > "$dir/dovecot/users" )
  chgrp dovecot "$dir/dovecot/master-users" "$dir/dovecot/users"

  local dovecot_tls imap_listeners postfix_tls smtpd_wrapper submission=""
  if [ "$MAIL_TLS" = no ]; then
    dovecot_tls="ssl = no
disable_plaintext_auth = no"
    imap_listeners="  inet_listener imap {
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }"
    postfix_tls="# no TLS (MAIL_TLS=no)"
    smtpd_wrapper=""
  else
    dovecot_tls="# IMAP only over TLS (the imaps listener below); LMTP stays on the host's loopback.
ssl = required
ssl_cert = <$MAIL_TLS_CERT
ssl_key = <$MAIL_TLS_KEY
ssl_min_protocol = TLSv1.2
# The nodes' HTTPS certificates (push.lua's notifications) chain to this CA. Not ssl_ca:
# Dovecot copies that into its client contexts too, and then demands CRLs.
ssl_client_ca_file = $MAIL_TLS_CA
disable_plaintext_auth = yes"
    imap_listeners="  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = $IMAP_PORT
    ssl = yes
  }"
    postfix_tls="# SMTP only over TLS: the listener is in wrapper mode (master.cf), TLS from the first byte.
smtpd_tls_chain_files = $MAIL_TLS_KEY, $MAIL_TLS_CERT
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2"
    smtpd_wrapper="  -o smtpd_tls_wrappermode=yes
tlsmgr    unix  -       -       n       1000?   1       tlsmgr"
  fi
  if [ -n "${SUBMISSION_PORT:-}" ]; then
    submission="$SUBMISSION_PORT inet n       -       n       -       -       smtpd
  -o syslog_name=postfix/submission$([ "$MAIL_TLS" = no ] || printf '\n  -o smtpd_tls_wrappermode=yes')
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_type=dovecot
  -o smtpd_sasl_path=$dir/dovecot/run/auth-postfix
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_sender_login_maps=regexp:$dir/postfix/etc/sender-logins
  -o smtpd_sender_restrictions=reject_sender_login_mismatch
  -o smtpd_recipient_restrictions=check_recipient_access,regexp:$dir/postfix/etc/no-detail
  -o smtpd_relay_restrictions=reject_unauth_destination
  -o message_size_limit=$MAIL_SUBMISSION_SIZE_LIMIT
  -o smtpd_timeout=5s${MAIL_SUBMISSION_POLICY:+
  -o smtpd_end_of_data_restrictions=check_policy_service,$MAIL_SUBMISSION_POLICY}
  -o cleanup_service_name=subcleanup
subcleanup unix n       -       n       -       0       cleanup
  -o sender_bcc_maps=regexp:$dir/postfix/etc/sent-bcc
  -o message_size_limit=$MAIL_SUBMISSION_SIZE_LIMIT"
  fi
  cat > "$dir/dovecot.conf" <<CONF
# Written by scripts/mail.sh: a private Dovecot (IMAP, and LMTP for Postfix's deliveries).
instance_name = bramble-mail
base_dir = $dir/dovecot/run
state_dir = $dir/dovecot/state
log_path = $dir/dovecot.log
protocols = imap lmtp
listen = $MAIL_ADDR
$dovecot_tls
auth_mechanisms = plain login
# The service account: LOGIN "USER*$MAIL_SERVICE_USER" with its password opens USER's mailbox.
auth_master_user_separator = *
mail_location = maildir:~/Maildir
mail_uid = mail
mail_gid = mail
first_valid_uid = $(id -u mail)
last_valid_uid = $(id -u mail)
first_valid_gid = $(id -g mail)
last_valid_gid = $(id -g mail)
passdb {
  driver = passwd-file
  args = $dir/dovecot/master-users
  master = yes
  # then the user's own passdb is asked whether the user exists
  result_success = continue
}
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT $dir/dovecot/users
}
userdb {
  driver = passwd-file
  args = $dir/dovecot/users
  default_fields = uid=mail gid=mail home=$dir/mail/%d/%n
}
# The Messaging Agent opens a short session per check (1,000 mailboxes: 1,000 logins a
# sweep): login and imap processes are kept and reused rather than started per
# connection, 7x the checks a second measured here. Reuse is safe on this host, where
# every mailbox belongs to the one mail user.
service imap {
  service_count = 0
  process_min_avail = 4
}
service imap-login {
  service_count = 0
  process_min_avail = 2
$imap_listeners
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
protocol lmtp {
  postmaster_address = postmaster@$MAIL_DOMAIN
  # USER+Sent@ (the submission service's copy of what USER sent) goes to USER's Sent.
  lmtp_save_to_detail_mailbox = yes
  lda_mailbox_autocreate = yes
  lda_mailbox_autosubscribe = yes
  $plugins
}
# Changes made over IMAP by any client (flags, expunges, moves) notify the nodes too
# (push.lua): reconciliation's trigger; the watermarks stay the truth.
protocol imap {
  $plugins
}
# Postfix's submission service authenticates its clients here (SASL).
service auth {
  unix_listener auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
# Every user has Sent and Trash, marked for clients (RFC 6154).
namespace inbox {
  inbox = yes
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox Trash {
    special_use = \\Trash
    auto = subscribe
  }
}
plugin {
  push_notification_driver = lua:file=$dir/push.lua
}
CONF

  for email in "${MAIL_USERS[@]}"; do echo "$email ok"; done > "$dir/postfix/etc/virtual-mailboxes"
  # Submission: each address is owned by the user of that name (From must be the
  # authenticated user), and its Sent copy goes to USER+Sent@, which no client may address
  # (both ports refuse any +detail recipient; the copy is added by the cleanup service).
  local domain_re=${MAIL_DOMAIN//./\\.}
  printf '/^([^@+]+@%s)$/ ${1}\n' "$domain_re" > "$dir/postfix/etc/sender-logins"
  printf '/^([^@+]+)@%s$/ ${1}+Sent@%s\n' "$domain_re" "$MAIL_DOMAIN" > "$dir/postfix/etc/sent-bcc"
  # On the submission port too: a user (or a device) must not file mail into another
  # user's folders (USER+Sent@ above all, the witness of an in-doubt send); the Sent copy
  # itself is added later, by the submission's cleanup, past these restrictions.
  printf '/\\+[^@]*@/ REJECT only the submission service files mail into a folder\n' > "$dir/postfix/etc/no-detail"
  cat > "$dir/postfix/etc/main.cf" <<CONF
# Written by scripts/mail.sh: a private Postfix that delivers $MAIL_DOMAIN to Dovecot over
# LMTP and nothing else anywhere (every other transport is an error).
compatibility_level = 3.6
queue_directory = $dir/postfix/queue
data_directory = $dir/postfix/data
maillog_file = $dir/postfix.log
maillog_file_prefixes = $dir
myhostname = mail.$MAIL_DOMAIN
mydomain = $MAIL_DOMAIN
myorigin = \$mydomain
mydestination =
inet_interfaces = $MAIL_ADDR
inet_protocols = ipv4
mynetworks = $MAIL_CLIENT_NET
alias_maps =
alias_database =
local_recipient_maps =
smtpd_peername_lookup = no
smtpd_banner = \$myhostname ESMTP
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access regexp:$dir/postfix/etc/no-detail
recipient_delimiter = +
$postfix_tls
message_size_limit = 52428800
# A mail Dovecot could not take (restarting) is tried again within seconds, not minutes.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 10s
virtual_mailbox_domains = $MAIL_DOMAIN
virtual_mailbox_maps = texthash:$dir/postfix/etc/virtual-mailboxes
virtual_transport = lmtp:inet:127.0.0.1:$LMTP_PORT
lmtp_host_lookup = native
default_transport = error:this mail host delivers only to $MAIL_DOMAIN
relay_transport = error:this mail host delivers only to $MAIL_DOMAIN
local_transport = error:this mail host delivers only to $MAIL_DOMAIN
CONF
  # Debian's master.cf, less what is not used, no chroot (the queue is private).
  cat > "$dir/postfix/etc/master.cf" <<CONF
$SMTP_PORT inet n       -       n       -       -       smtpd
${smtpd_wrapper}
$submission
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF
  # Postfix waits until its config files are a second old before it starts (~2 s).
  touch -d '1 minute ago' "$dir/postfix/etc/main.cf" "$dir/postfix/etc/master.cf" "$dir/postfix/etc/virtual-mailboxes" \
    "$dir/postfix/etc/sender-logins" "$dir/postfix/etc/sent-bcc" "$dir/postfix/etc/no-detail"
}

# The PIDs of Dovecot's and Postfix's masters (from their own pid files), empty if none.
mail_dovecot_pid() { local p; p=$(cat "$1/dovecot/run/master.pid" 2>/dev/null || true); [[ $p =~ ^[0-9]+$ ]] && echo "$p" || true; }
mail_postfix_pid() { local p; p=$(tr -d ' \n' < "$1/postfix/queue/pid/master.pid" 2>/dev/null || true); [[ $p =~ ^[0-9]+$ ]] && echo "$p" || true; }

# True once something accepts connections on ADDR:PORT (asked from the mail host).
mail_port_open() { run_in "$MAIL_NS" bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# Starts Dovecot, then Postfix (which delivers to Dovecot's LMTP), each in the mail
# host's namespace; returns when both listen.
mail_start() {
  local dir=$1 i t0 pid
  [ "$MAIL_TLS" = no ] || { [ -r "${MAIL_TLS_CERT:-}" ] && [ -r "${MAIL_TLS_KEY:-}" ] && [ -r "${MAIL_TLS_CA:-}" ]; } \
    || die "the mail host needs MAIL_TLS_CERT, MAIL_TLS_KEY and MAIL_TLS_CA (its certificate, key and the CA)"
  mkdir -p "$dir"
  mail_write_config "$dir"
  t0=$(date +%s%N)
  # Dovecot in the foreground (-F): $! is its master (ip netns exec replaces itself).
  setsid $(netns_exec "$MAIL_NS") /usr/sbin/dovecot -F -c "$dir/dovecot.conf" </dev/null >>"$dir/dovecot.out" 2>&1 &
  for i in $(seq 0 100); do
    mail_port_open "$MAIL_ADDR" "$IMAP_PORT" && mail_port_open 127.0.0.1 "$LMTP_PORT" && [ -n "$(mail_dovecot_pid "$dir")" ] && break
    alive_pid $! || { cat "$dir/dovecot.out" "$dir/dovecot.log" 2>/dev/null | tail -20 >&2; die "Dovecot did not start"; }
    sleep 0.05
  done
  [ $i -lt 100 ] || { tail -20 "$dir/dovecot.log" >&2; die "Dovecot does not listen on $MAIL_ADDR:$IMAP_PORT and 127.0.0.1:$LMTP_PORT"; }
  echo $(( ($(date +%s%N) - t0) / 1000000 )) > "$dir/dovecot.start-ms"
  # Postfix's master must start as root and daemonizes (its PID in queue/pid/master.pid).
  # Its daemons log to postfix.log (maillog_file); its commands print errors only to a
  # terminal, else to syslog, which this machine lacks: under script they reach
  # postfix-start.out.
  t0=$(date +%s%N)
  run_in "$MAIL_NS" script -qec "/usr/sbin/postfix -c $dir/postfix/etc start" /dev/null </dev/null >"$dir/postfix-start.out" 2>&1 \
    || { tail -n 5 "$dir/postfix-start.out" "$dir/postfix.log" >&2 || true; die "Postfix did not start"; }
  for i in $(seq 0 100); do
    pid=$(mail_postfix_pid "$dir")
    [ -n "$pid" ] && mail_port_open "$MAIL_ADDR" "$SMTP_PORT" && { [ -z "${SUBMISSION_PORT:-}" ] || mail_port_open "$MAIL_ADDR" "$SUBMISSION_PORT"; } && break
    sleep 0.05
  done
  [ $i -lt 100 ] || { tail -n 5 "$dir/postfix-start.out" "$dir/postfix.log" >&2 || true; die "Postfix does not listen on $MAIL_ADDR:$SMTP_PORT"; }
  echo $(( ($(date +%s%N) - t0) / 1000000 )) > "$dir/postfix.start-ms"
}

# Stops both masters at once by PID (each stops its own children), then whatever is left
# in their sessions (a child that outlived its master).
mail_stop() {
  local dir=$1 pids=() sids=() pid sid
  [ -d "$dir" ] || return 0
  # A stale pid file must not stop another program: the PID must still be that master.
  for pid in "$(mail_dovecot_pid "$dir") dovecot" "$(mail_postfix_pid "$dir") master"; do
    set -- $pid
    [ $# -eq 2 ] && alive_pid "$1" && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || continue
    pids+=("$1"); sid=$(ps -o sid= -p "$1" 2>/dev/null | tr -d ' '); [ "$sid" = "$1" ] && sids+=("$sid")
  done
  stop_pids 5 "${pids[@]}"
  pids=()
  for sid in "${sids[@]}"; do pids+=($(ps -o pid= -s "$sid" 2>/dev/null || true)); done
  [ ${#pids[@]} -eq 0 ] || stop_pids 2 "${pids[@]}"
  return 0
}

# JSON (jq): where the mail host is and where its secrets are (paths, never contents).
mail_info_json() {
  local dir=$1
  jq -n --arg domain "$MAIL_DOMAIN" --arg smtp "$MAIL_ADDR:$SMTP_PORT" --arg imap "$MAIL_ADDR:$IMAP_PORT" \
    --arg submission "${SUBMISSION_PORT:+$MAIL_ADDR:$SUBMISSION_PORT}" \
    --arg lmtp "127.0.0.1:$LMTP_PORT" --arg user "$MAIL_SERVICE_USER" --arg password_file "$dir/service-password" \
    --arg notify_token_file "$dir/notify-token" --arg ca_file "$MAIL_TLS_CA" --arg tls "$MAIL_TLS" \
    --arg passwords "$dir/user-passwords" --argjson users "$(printf '%s\n' "${MAIL_USERS[@]}" | jq -R . | jq -s .)" \
    --argjson dovecot "$(mail_dovecot_pid "$dir" | grep . || echo null)" --argjson postfix "$(mail_postfix_pid "$dir" | grep . || echo null)" \
    --arg dovecot_log "$dir/dovecot.log" --arg postfix_log "$dir/postfix.log" '
    {domain: $domain, smtp: $smtp, imap: $imap, lmtp: $lmtp, submission: (if $submission == "" then null else $submission end), tls: (if $tls == "no" then {smtp: "plain", imap: "plain"} else {smtp: "implicit", imap: "implicit", ca_file: $ca_file} end), users: $users, user_passwords_file: $passwords,
     service_account: {user: $user, password_file: $password_file}, notify_token_file: $notify_token_file,
     dovecot_pid: $dovecot, postfix_pid: $postfix, dovecot_log: $dovecot_log, postfix_log: $postfix_log}'
}
