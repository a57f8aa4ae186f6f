# Stand-in for postgres:15-alpine, from Debian's postgresql-15. Reproduced:
# the entrypoint contract (see postgres-entrypoint.sh), PGDATA at
# /var/lib/postgresql/data as a volume, pg_isready and psql on $PATH,
# STOPSIGNAL SIGINT, port 5432. Not reproduced: alpine, its uid 70 (Debian's
# postgres user has its own uid), every POSTGRES_INITDB_* option.
FROM wellknownd-test/debian-postgres
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN mkdir -p /docker-entrypoint-initdb.d /var/run/postgresql \
 && chown postgres:postgres /var/run/postgresql && chmod 2777 /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
