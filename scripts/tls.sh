# A private CA and its hosts' certificates, made with the `openssl` command. Source after
# lib.sh; used by deploy/cluster (deploy/lib/tls.sh), scripts/pg-private, pg-patroni and
# mail-private.
#
# DIR/ca.crt is the CA certificate every client trusts; its key stays in DIR/ca/ (0700)
# and is given to no daemon. Each host that serves or presents a certificate has
# DIR/HOST/{cert.pem,key.pem}: an EC P-256 key made under umask 077 (0600 from its
# creation, optionally handed to OWNER) and a certificate for the host's address
# (subjectAltName IP:…, and HOST.bramble), good as server and as client. Its CN is
# HOST.bramble, which is never an etcd user's name (etcd maps a client certificate's CN
# to a user).

tls_ca() {  # DIR
  local d=$1
  mkdir -p "$d/ca"; chmod 755 "$d"; chmod 700 "$d/ca"
  ( umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/ca/ca.key" 2>/dev/null )
  openssl req -x509 -new -key "$d/ca/ca.key" -sha256 -days 3650 -subj "/CN=Bramble private CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$d/ca.crt" 2>/dev/null || die "openssl could not make the private CA"
  chmod 644 "$d/ca.crt"
}

tls_host() {  # DIR HOST IP [OWNER]
  local d=$1 host=$2 ip=$3 owner=${4:-} h="$1/$2" ext
  mkdir -p "$h"; chmod 755 "$h"
  ( umask 077
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$h/key.pem" 2>/dev/null
    openssl req -new -key "$h/key.pem" -subj "/CN=$host.bramble" -out "$h/req.csr" 2>/dev/null )
  ext=$(mktemp)
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=IP:$ip,DNS:$host.bramble" > "$ext"
  openssl x509 -req -in "$h/req.csr" -CA "$d/ca.crt" -CAkey "$d/ca/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 397 -sha256 -extfile "$ext" -out "$h/cert.pem" 2>/dev/null || die "openssl could not sign $host's certificate"
  rm -f "$h/req.csr" "$ext"; chmod 644 "$h/cert.pem"
  [ -z "$owner" ] || chown "$owner" "$h/key.pem"   # stays 0600
  openssl verify -CAfile "$d/ca.crt" -verify_ip "$ip" "$h/cert.pem" >/dev/null || die "$host's certificate does not verify"
}
