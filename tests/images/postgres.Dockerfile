# STAND-IN for the official postgres:15 image (no registry is reachable in the tests):
# Debian 12's postgresql-15 behind an entrypoint that honours the same variables
# (POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB, PGDATA), initialises an empty
# PGDATA, listens on 0.0.0.0:5432 with scram-sha-256 and runs as the postgres user
# (UID/GID 999, as in the official image). Other commands (pg_dump, psql) pass through.
ARG ROOTFS
FROM ${ROOTFS}
COPY ca/ /usr/local/share/ca-certificates/
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN update-ca-certificates >/dev/null \
 && groupadd --system --gid 999 postgres \
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres \
 && mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /run/postgresql \
 && chmod 0700 /var/lib/postgresql/data && chmod 3777 /run/postgresql \
 && chmod 0755 /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
