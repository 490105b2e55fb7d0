# The cluster's private CA and its hosts' certificates (sourced by deploy/cluster).
#
# $TMP/tls/ca.crt is the CA certificate every client trusts (make status shows its path);
# its key stays in $TMP/tls/ca/ (0700) with the tooling and is given to no daemon. Each
# host that serves or presents a certificate has $TMP/tls/HOST/{cert.pem,key.pem}: an
# EC P-256 key made under umask 077 (0600 from its creation) and a certificate for the
# host's address (subjectAltName IP:…, and HOST.bramble), good as server and as client.

tls_ca() {  # DIR
  local d=$1
  mkdir -p "$d/ca"; chmod 755 "$d"; chmod 700 "$d/ca"
  ( umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/ca/ca.key" 2>/dev/null )
  openssl req -x509 -new -key "$d/ca/ca.key" -sha256 -days 3650 -subj "/CN=Bramble private CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$d/ca.crt" 2>/dev/null || die "openssl could not make the private CA"
  chmod 644 "$d/ca.crt"
}

tls_host() {  # DIR HOST
  local d=$1 host=$2 h="$1/$2" ext
  mkdir -p "$h"; chmod 755 "$h"
  ( umask 077
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$h/key.pem" 2>/dev/null
    openssl req -new -key "$h/key.pem" -subj "/CN=$host.bramble" -out "$h/req.csr" 2>/dev/null )
  ext=$(mktemp)
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=IP:$(addr "$host"),DNS:$host.bramble" > "$ext"
  openssl x509 -req -in "$h/req.csr" -CA "$d/ca.crt" -CAkey "$d/ca/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 397 -sha256 -extfile "$ext" -out "$h/cert.pem" 2>/dev/null || die "openssl could not sign $host's certificate"
  rm -f "$h/req.csr" "$ext"; chmod 644 "$h/cert.pem"
  openssl verify -CAfile "$d/ca.crt" -verify_ip "$(addr "$host")" "$h/cert.pem" >/dev/null || die "$host's certificate does not verify"
}

# The CA and a certificate for each host that serves TLS or presents one.
tls_setup() {  # DIR
  tls_ca "$1"
  local host
  for host in relay node-a node-b; do tls_host "$1" "$host"; done
}

# The flags that give a daemon its host's certificate.
tls_flags() {  # HOST
  echo "--tls-ca $TMP/tls/ca.crt --tls-cert $TMP/tls/$1/cert.pem --tls-key $TMP/tls/$1/key.pem"
}
