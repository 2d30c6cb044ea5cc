#!/usr/bin/env bash
# Night Talk: one database and one login role per service (intake, routing, supervision, notify).
#
# Run by the postgres image from /docker-entrypoint-initdb.d on the FIRST start with an empty
# data volume (it is not re-run later: to change a password afterwards use ALTER ROLE, or drop
# the volume). Safe to run again by hand: existing roles and databases are left as they are.
#
# Passwords come from <SERVICE>_DB_PASSWORD (default: the service name, for development only).
# Connection: the postgres entrypoint's POSTGRES_USER / POSTGRES_DB over the local socket;
# PGHOST / PGPORT are honoured when run by hand.
set -euo pipefail

admin_user="${POSTGRES_USER:-postgres}"
admin_db="${POSTGRES_DB:-$admin_user}"

create_service_database() {
    local name="$1" password="$2"
    # psql variables (:'x' literal, :"x" identifier) quote the values; \gexec runs the
    # generated statement only when the role/database is missing.
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$admin_user" --dbname "$admin_db" \
        -v name="$name" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'name', :'password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'name')
\gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'name', :'name', 'UTF8')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name')
\gexec
-- No service reads another's database.
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
GRANT ALL ON DATABASE :"name" TO :"name";
SQL
    # The service owns the public schema of its database (PostgreSQL 15+ no longer lets
    # every role create there).
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$admin_user" --dbname "$name" \
        -v name="$name" <<'SQL'
ALTER SCHEMA public OWNER TO :"name";
SQL
    echo "nighttalk init: database and role '$name' ready"
}

create_service_database intake      "${INTAKE_DB_PASSWORD:-intake}"
create_service_database routing     "${ROUTING_DB_PASSWORD:-routing}"
create_service_database supervision "${SUPERVISION_DB_PASSWORD:-supervision}"
create_service_database notify      "${NOTIFY_DB_PASSWORD:-notify}"
