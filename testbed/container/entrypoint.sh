#!/bin/sh
# Entry point of the test bed's PostgreSQL image: on first start, create the cluster with the
# same roles, TLS files and pg_hba rules as the test bed's other servers, then run postgres.
# The password comes from a mounted file and reaches psql on stdin, never on a command line.
set -eu
BIN=/usr/lib/postgresql/15/bin
DATA=/var/lib/postgresql/coderops
SECRETS=/run/coderops-secrets

if [ ! -s "$DATA/PG_VERSION" ]; then
  mkdir -p "$DATA" /run/postgresql
  chown postgres:postgres "$DATA" /run/postgresql
  su postgres -s /bin/sh -c "$BIN/initdb -D $DATA -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-instructions" >/dev/null
  for f in server.crt server.key ca.crt; do
    install -o postgres -g postgres -m 0600 "$SECRETS/$f" "$DATA/$f"
  done
  cat >> "$DATA/postgresql.conf" <<CONF
listen_addresses = '*'
max_connections = 100
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.crt'
password_encryption = 'scram-sha-256'
shared_buffers = 16MB
fsync = off
CONF
  install -o postgres -g postgres -m 0600 /etc/coderops-pg_hba.conf "$DATA/pg_hba.conf"
  su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA -w -s -o '-c listen_addresses=' start"
  pw=$(sed "s/'/''/g" "$SECRETS/password")
  printf "CREATE ROLE coder LOGIN PASSWORD '%s';\nCREATE DATABASE coder OWNER coder;\nCREATE ROLE coder_mtls LOGIN;\n" "$pw" \
    | su postgres -s /bin/sh -c "$BIN/psql -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres -f -"
  unset pw
  su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA -w -s stop"
fi
exec su postgres -s /bin/sh -c "exec $BIN/postgres -D $DATA"
