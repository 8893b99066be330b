#!/usr/bin/env bash
# Generates the certificate chains of tests/chains.rs with OpenSSL (run once;
# the PEM files are committed). Every leaf marks certificatePolicies
# critical, as TPM AIK certificates do, so webpki refuses the chain and only
# the TPM fallback path can judge it. Valid until 2099.
set -euo pipefail
cd "$(dirname "$0")"
days=26000
ec() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null; }
ext() { printf '%s\n' "$@" > ext.cnf; }
sign() { # name issuer digest extensions...
  local name=$1 issuer=$2 digest=$3; shift 3
  ext "$@"
  openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" -CAcreateserial \
    -days $days "-$digest" -extfile ext.cnf -out "$name.pem" 2>/dev/null
}
ec root
openssl req -new -x509 -key root.key -subj "/CN=chains test root" -days $days -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out root.pem 2>/dev/null
ca="basicConstraints=critical,CA:TRUE"
ku="keyUsage=critical,keyCertSign,cRLSign"
leaf=("basicConstraints=critical,CA:FALSE" "certificatePolicies=critical,1.2.3.4")
# good: root -> ca -> leaf
ec good-ca; sign good-ca root sha256 "$ca,pathlen:0" "$ku"
ec good-leaf; sign good-leaf good-ca sha256 "${leaf[@]}"
# pathlen: root -> pl-ca0 (pathlen 0) -> pl-ca1 -> leaf
ec pl-ca0; sign pl-ca0 root sha256 "$ca,pathlen:0" "$ku"
ec pl-ca1; sign pl-ca1 pl-ca0 sha256 "$ca" "$ku"
ec pl-leaf; sign pl-leaf pl-ca1 sha256 "${leaf[@]}"
# no key usage on the CA
ec noku-ca; sign noku-ca root sha256 "$ca"
ec noku-leaf; sign noku-leaf noku-ca sha256 "${leaf[@]}"
# an RSA-1024 CA
openssl genrsa -out rsa-ca.key 1024 2>/dev/null; sign rsa-ca root sha256 "$ca" "$ku"
ec rsa-leaf; sign rsa-leaf rsa-ca sha256 "${leaf[@]}"
# a SHA-1 signed leaf
ec sha1-leaf; sign sha1-leaf good-ca sha1 "${leaf[@]}"
# all at once (the issue's chain): root -> CA pathlen 0 -> RSA-1024 CA
# without key usage -> SHA-1 leaf
openssl genrsa -out all-ca1.key 1024 2>/dev/null; sign all-ca1 pl-ca0 sha256 "$ca"
ec all-leaf; sign all-leaf all-ca1 sha1 "${leaf[@]}"
rm -f ./*.key ./*.csr ./*.srl ext.cnf
