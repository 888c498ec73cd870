#!/bin/sh
# Entrypoint of the test PostgreSQL image: the contract of the official `postgres` image that
# testcontainers' PostgresContainer relies on, and nothing more.
#  - POSTGRES_PASSWORD (required), POSTGRES_USER (default postgres), POSTGRES_DB (default the
#    user's name) are applied when the data directory is empty: the user is the superuser
#    made by initdb, the database is created by it.
#  - Arguments that start with "-" are options for postgres (`-c max_connections=300`).
#  - "database system is ready to accept connections" appears on stdout (the temporary
#    server that creates the database logs through pg_ctl to stdout) and then on stderr (the
#    real server), as with the official image: older testcontainers 4.x releases wait for
#    that line in the logs instead of running psql inside.
set -eu

if [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?is not set: the server accepts password logins over TCP only}"
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 --no-instructions
    rm -f "$pwfile"
    # Clients come from the Docker bridge, not only from loopback.
    printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

    # A temporary server on the unix socket only, so nobody connects before the database
    # exists (the same order as the official image).
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    if [ "$db" != postgres ]; then
        printf 'CREATE DATABASE :"db";\n' |
            psql -X -q -v ON_ERROR_STOP=1 -U "$user" -d postgres --set db="$db"
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop
fi

exec "$@"
