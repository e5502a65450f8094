#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the tests on 127.0.0.1:${RAG_TEST_PG_PORT:-54329} and create
# the database `ragtest`. Installs Debian's postgresql when it is missing. Prints the SQLAlchemy URL.
set -euo pipefail
port="${RAG_TEST_PG_PORT:-54329}"
data="${RAG_TEST_PG_DATA:-/tmp/ragkit-pg-$port}"

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql) >&2
fi
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }

if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
  rm -rf "$data" && mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres "$data"
  run "'$bin/initdb' -D '$data' -A trust -U postgres" >/dev/null
  run "'$bin/pg_ctl' -D '$data' -o '-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off' -l '$data/log' -w start" >/dev/null
fi
run "'$bin/psql' -h 127.0.0.1 -p $port -U postgres -tAc \"SELECT 1 FROM pg_database WHERE datname='ragtest'\"" | grep -q 1 \
  || run "'$bin/createdb' -h 127.0.0.1 -p $port -U postgres ragtest"
echo "postgresql+psycopg://postgres@127.0.0.1:$port/ragtest"
