#!/usr/bin/env bash
# Start Debian's PostgreSQL for the registry tests and print its SQLAlchemy URL.
# Installs it first when missing (root with apt only). Prints nothing and exits 0
# when it cannot: the PostgreSQL tests then skip and say why.
set -u
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || exit 0
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >"$log" 2>&1 || exit 0
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
pg_lsclusters -h 2>/dev/null | grep -q "^$version main" || pg_createcluster "$version" main >"$log" 2>&1 || exit 0
pg_ctlcluster "$version" main start >"$log" 2>&1 || pg_lsclusters -h | grep -q "^$version main.*online" || exit 0
as_postgres() { su postgres -c "$1" >"$log" 2>&1; }
for _ in 1 2 3 4 5 6 7 8 9 10; do as_postgres "psql -qtAc 'select 1'" && break; sleep 1; done
as_postgres "psql -qtAc \"select 1 from pg_roles where rolname='clinicpress'\" | grep -q 1 || psql -qc \"create role clinicpress login password 'clinicpress'\"" || exit 0
as_postgres "psql -qtAc \"select 1 from pg_database where datname='clinicpress_test'\" | grep -q 1 || createdb -O clinicpress clinicpress_test" || exit 0
echo "postgresql+psycopg://clinicpress:clinicpress@127.0.0.1/clinicpress_test"
