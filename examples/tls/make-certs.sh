#!/usr/bin/env bash
# Development certificates and passwords for docker-compose.tls.yml (docs/operations.md).
#
#   examples/tls/make-certs.sh [DIR]     # default: ./certs (git- and docker-ignored)
#
# Writes a private CA, server certificates for `redis` and `kafka` (also valid for
# localhost and 127.0.0.1), a client certificate for the Currents processes, random
# passwords, and the files each server reads:
#
#   DIR/ca/          ca.key (keep it here: nothing mounts this directory), ca.crt
#   DIR/redis/       redis.crt, redis.key, ca.crt, users.acl (hashed password)
#   DIR/kafka/       kafka.p12 + kafka_keystore_creds (the apache/kafka image's keystore),
#                    kafka.crt, kafka.key, ca.crt, kafka_jaas.conf, client.properties
#   DIR/currents/    client.crt, client.key, ca.crt
#   DIR/passwords.env  CURRENTS_KAFKA_SASL_PASSWORD and CURRENTS_REDIS_PASSWORD
#
# Keys below redis/, kafka/ and currents/ are world-readable because the containers run
# as users of their own (redis, appuser, currents); that is fine on a development
# machine only. In production use your own CA and your platform's secret store.
# tests/integration/test_tls.py runs this script and the servers with its output.
set -euo pipefail

dir=${1:-certs}
days=${CERT_DAYS:-825}
mkdir -p "$dir"/ca "$dir"/redis "$dir"/kafka "$dir"/currents
cd "$dir"

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

new_key ca/ca.key
chmod 600 ca/ca.key
openssl req -x509 -new -key ca/ca.key -sha256 -days "$days" -subj "/CN=Currents development CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca/ca.crt

# issue NAME KEY CERT SUBJECT_ALT_NAMES EXTENDED_KEY_USAGE
issue() {
  new_key "$2"
  openssl req -new -key "$2" -subj "/CN=$1" -out "$3.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nsubjectAltName=%s\nextendedKeyUsage=%s\n' \
    "$4" "$5" >"$3.ext"
  openssl x509 -req -in "$3.csr" -CA ca/ca.crt -CAkey ca/ca.key -CAcreateserial \
    -CAserial ca/ca.srl -days "$days" -sha256 -extfile "$3.ext" -out "$3" 2>/dev/null
  rm -f "$3.csr" "$3.ext"
  chmod 644 "$2"
}
# The Redis certificate doubles as the healthcheck's client certificate.
issue redis redis/redis.key redis/redis.crt "DNS:redis,DNS:localhost,IP:127.0.0.1" serverAuth,clientAuth
issue kafka kafka/kafka.key kafka/kafka.crt "DNS:kafka,DNS:localhost,IP:127.0.0.1" serverAuth
issue currents currents/client.key currents/client.crt "DNS:currents" clientAuth
for sub in redis kafka currents; do cp ca/ca.crt "$sub/ca.crt"; done

password() { openssl rand -hex 24; }
kafka_password=$(password)
kafka_admin_password=$(password)
redis_password=$(password)
keystore_password=$(password)

# Kafka: a PKCS#12 keystore and the credentials file the apache/kafka image reads; SASL
# PLAIN users in JAAS (the broker's own inter-broker login is `admin`).
printf '%s' "$keystore_password" >kafka/kafka_keystore_creds
openssl pkcs12 -export -name kafka -in kafka/kafka.crt -inkey kafka/kafka.key \
  -certfile ca/ca.crt -passout "pass:$keystore_password" -out kafka/kafka.p12
cat >kafka/kafka_jaas.conf <<JAAS
KafkaServer {
    org.apache.kafka.common.security.plain.PlainLoginModule required
    username="admin"
    password="$kafka_admin_password"
    user_admin="$kafka_admin_password"
    user_currents="$kafka_password";
};
JAAS
cat >kafka/client.properties <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$kafka_admin_password";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/secrets/ca.crt
PROPERTIES

# Redis: the default user may only PING (the healthcheck); `currents` may do everything.
# The password is stored as its SHA-256, the way ACL files allow.
redis_hash=$(printf '%s' "$redis_password" | openssl dgst -sha256 -r | cut -d' ' -f1)
cat >redis/users.acl <<ACL
user default on nopass -@all +ping
user currents on #$redis_hash ~* &* +@all
ACL

umask 077
cat >passwords.env <<ENV
CURRENTS_KAFKA_SASL_PASSWORD=$kafka_password
CURRENTS_REDIS_PASSWORD=$redis_password
ENV
chmod 644 kafka/*.conf kafka/*.properties kafka/kafka_keystore_creds kafka/kafka.p12
echo "certificates and passwords in $(pwd); export them with: set -a; . $(pwd)/passwords.env; set +a"
