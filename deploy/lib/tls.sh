# The cluster's private CA and its hosts' certificates (sourced by deploy/cluster; the
# openssl steps are scripts/tls.sh). $TMP/tls/ca.crt is what every client trusts (make
# status shows its path); $TMP/tls/HOST/{cert.pem,key.pem} are each host's.

# The CA and a certificate for each host that serves TLS or presents one. The database
# hosts' keys belong to the PostgreSQL user (PostgreSQL and Patroni read them; etcd, as
# root, too); the others' to root, who starts those daemons (scripts/im.sh gives Prosody
# a copy of the IM host's key, owned by the user it runs as).
tls_setup() {  # DIR
  tls_ca "$1"
  local host
  for host in db1 db2; do tls_host "$1" "$host" "$(addr "$host")" "$(pg_user)"; done
  for host in db3 relay node-a node-b mail im; do tls_host "$1" "$host" "$(addr "$host")"; done
}

# The flags that give a daemon its host's certificate (or, with BRAMBLE_DEPLOY_TLS=no,
# turn its TLS off).
tls_flags() {  # HOST
  if [ "$TLS_MODE" = yes ]; then
    echo "--tls-ca $TMP/tls/ca.crt --tls-cert $TMP/tls/$1/cert.pem --tls-key $TMP/tls/$1/key.pem"
  else
    echo "--plaintext yes"
  fi
}
