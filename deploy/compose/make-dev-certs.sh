#!/bin/sh
# Self-signed CA + server certificate for a first try of deploy/compose (not
# for production: use your PKI). Writes ./secrets/{ca.crt,tls.crt,tls.key}.
# The server certificate names "kmemfleet", "localhost", 127.0.0.1 and $HOSTNAME_FQDN.
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
cd secrets
name=${HOSTNAME_FQDN:-$(hostname -f 2>/dev/null || hostname)}
openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=kmemfleet dev CA" \
	-keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:3072 -nodes -subj "/CN=kmemfleet" -keyout tls.key -out tls.csr 2>/dev/null
printf 'subjectAltName=DNS:kmemfleet,DNS:localhost,DNS:%s,IP:127.0.0.1\n' "$name" >san.ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
	-extfile san.ext -out tls.crt 2>/dev/null
rm -f tls.csr san.ext ca.srl
chmod 0644 ca.crt tls.crt
# Dev only: the container user (uid 10001) must read the key.
chmod 0644 tls.key
chmod 0600 ca.key
echo "secrets/: ca.crt (give to devices as --tls-ca), tls.crt, tls.key"
