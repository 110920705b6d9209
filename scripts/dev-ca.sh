#!/usr/bin/env bash
# A throw-away certificate authority and a server certificate it signs, for HTTPS on a test or demo
# network (browsers give a page camera and microphone only in a secure context: https, or localhost).
#
#   scripts/dev-ca.sh OUTDIR NAME_OR_IP...
#
# OUTDIR/ca.pem, ca.key: the CA, made once and kept (trust ca.pem: SSL_CERT_FILE for Python, certutil
# for Chromium's NSS database). OUTDIR/server.pem, server.key: a certificate whose subjectAltName covers
# every argument (IP:… for addresses, DNS:… for names) plus localhost and 127.0.0.1; made again only
# when the names change, the CA changed or it expires within a day. Prints the four paths. Never use
# this CA for anything but a throw-away network: its key lies unencrypted beside it.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 OUTDIR [NAME_OR_IP...]" >&2
  exit 2
fi
out=$1
shift
mkdir -p "$out"

# The subjectAltName: every argument, localhost and 127.0.0.1, once each, in a stable order.
declare -A seen=()
sans=()
mapfile -t rest < <(printf '%s\n' "$@" | sort -u)  # any order of the same names: the same certificate
for name in localhost 127.0.0.1 ${rest[@]+"${rest[@]}"}; do
  [ -n "$name" ] || continue
  if [[ $name =~ ^[0-9]+(\.[0-9]+){3}$ || $name == *:* ]]; then
    entry="IP:$name"
  elif [[ $name =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
    entry="DNS:$name"
  else
    echo "$0: not a host name or an IP address: $name" >&2
    exit 2
  fi
  [ -n "${seen[$entry]:-}" ] && continue
  seen[$entry]=1
  sans+=("$entry")
done
san=$(IFS=,; echo "${sans[*]}")
first=${1:-localhost}

ca="$out/ca.pem" ca_key="$out/ca.key" cert="$out/server.pem" key="$out/server.key" record="$out/server.san"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 077

if [ ! -s "$ca" ] || [ ! -s "$ca_key" ]; then
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$ca_key" -out "$ca" -days 3650 -subj "/O=confctl/CN=confctl throw-away test CA $(date +%s)" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" >/dev/null 2>&1
  rm -f "$cert" "$key" "$record"  # signed by a CA that is gone
fi

current() {
  [ -s "$cert" ] && [ -s "$key" ] && [ "$(cat "$record" 2>/dev/null)" = "$san" ] &&
    openssl verify -CAfile "$ca" "$cert" >/dev/null 2>&1 &&
    openssl x509 -in "$cert" -noout -checkend 86400 >/dev/null 2>&1
}

if ! current; then
  cat >"$tmp/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=$san
EOF
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$tmp/server.key" -out "$tmp/server.csr" -subj "/O=confctl/CN=$first" >/dev/null 2>&1
  # 365 days: Chromium refuses longer-lived server certificates from some CAs.
  openssl x509 -req -in "$tmp/server.csr" -CA "$ca" -CAkey "$ca_key" -CAcreateserial -CAserial "$tmp/ca.srl" \
    -days 365 -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/server.pem" >/dev/null 2>&1
  mv "$tmp/server.key" "$key"
  mv "$tmp/server.pem" "$cert"
  echo "$san" >"$record"
fi
chmod 644 "$ca" "$cert"

echo "$ca"
echo "$ca_key"
echo "$cert"
echo "$key"
