#!/bin/bash
# Stand-in for the official postgres image's docker-entrypoint.sh, reduced to
# the contract wellknownd's compose file and Dendrite's rely on:
# - POSTGRES_USER (default postgres), POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE
#   (read while still root, as the official script does), POSTGRES_DB
#   (default POSTGRES_USER);
# - on an empty PGDATA: initdb, the user and the database, password
#   authentication from other hosts, then /docker-entrypoint-initdb.d/*.sql
#   and *.sh run as the postgres user; on a non-empty PGDATA none of that;
# - the server runs as the postgres user, in the foreground.
set -Eeuo pipefail

if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
	POSTGRES_PASSWORD="$(< "$POSTGRES_PASSWORD_FILE")"
	export POSTGRES_PASSWORD
	unset POSTGRES_PASSWORD_FILE
fi
export POSTGRES_USER="${POSTGRES_USER:-postgres}"
export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

if [ "${1:-}" != postgres ]; then
	exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA"
	chown postgres:postgres "$PGDATA"
	chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo "postgres stand-in: POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE must be set" >&2
		exit 1
	fi
	ls /docker-entrypoint-initdb.d/ > /dev/null # as the official script: fail early if unreadable
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") --auth-local=trust --auth-host=scram-sha-256 > /dev/null
	echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /var/run/postgresql" -w start > /dev/null
	export PGHOST=/var/run/postgresql PGUSER="$POSTGRES_USER"
	if [ "$POSTGRES_DB" != postgres ]; then
		psql -v ON_ERROR_STOP=1 --dbname postgres -c "CREATE DATABASE \"$POSTGRES_DB\"" > /dev/null
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
		*.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --dbname "$POSTGRES_DB" -f "$f" ;;
		*.sh) echo "running $f"; . "$f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
	echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@" -c listen_addresses='*' -k /var/run/postgresql
