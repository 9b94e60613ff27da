// PostHog-like compose pairs written by the tests themselves, so the suite runs in a plain clone
// (no ../shared with PostHog's own files). Two shapes of the hobby deployment:
//
//   current: services `extends:` a base file; the base holds the Caddy proxy's CADDYFILE (routes,
//            `${CADDY_HOST:-...}` site address, `${CADDY_TLS_BLOCK}` global block) and an `env_file`
//            (.env.services) shared through a `<<: *worker` merge key; health conditions
//            (service_healthy, service_completed_successfully); an `x-logging` anchor; a one-shot
//            kafka-init; cymbal, replay, livestream and Temporal as switchable features.
//   old:     before .env.services existed: no env_file at all, `redis` beside `redis7`, MinIO as
//            object storage, `cyclotron-janitor`, no cymbal, livestream on :8666, ports published on
//            every interface, no log rotation and no ZooKeeper purge.
//
// Both are test data in the shape of upstream files, kept small; they are not templates.
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Compose's ${VAR} syntax is data here
import fs from 'node:fs'
import path from 'node:path'
import { type ComposeFile, parseCompose } from '../../lib/stack/compose.mts'
import { UPSTREAM_POSTHOG } from './shared.ts'

export type HobbyShape = 'current' | 'old'

const CADDYFILE = `            CADDYFILE: |
                {
                \${CADDY_TLS_BLOCK:-}
                }
                \${CADDY_HOST:-http://localhost:8000} {
                    @replay-capture {
                        path /s
                        path /s/
                        path /s/*
                    }

                    @capture {
                        path /e
                        path /e/
                        path /e/*
                        path /i/v0
                        path /i/v0/
                        path /i/v0/*
                        path /batch
                        path /batch/
                        path /batch/*
                    }

                    @flags {
                        path /flags
                        path /flags/
                        path /flags/*
                    }

                    @livestream {
                        path /livestream
                        path /livestream/
                        path /livestream/*
                    }

                    handle @livestream {
                        uri strip_prefix /livestream
                        reverse_proxy livestream:8080 {
                            flush_interval -1
                        }
                    }

                    handle @capture {
                        reverse_proxy capture:3000
                    }

                    handle @replay-capture {
                        reverse_proxy replay-capture:3000
                    }

                    handle @flags {
                        reverse_proxy feature-flags:3001
                    }

                    @objectstorage {
                        path /posthog
                        path /posthog/
                        path /posthog/*
                    }

                    handle @objectstorage {
                        reverse_proxy objectstorage:19000
                    }

                    handle {
                        reverse_proxy web:8000
                    }
                }
`

const CURRENT_BASE = `#
# docker-compose base file (test data in the shape of PostHog's).
#

services:
    proxy:
        image: caddy
        entrypoint: sh
        restart: always
        command: -c 'set -x && echo "$$CADDYFILE" > /etc/caddy/Caddyfile && exec caddy run -c /etc/caddy/Caddyfile'
        environment:
            CADDY_TLS_BLOCK: ''
            CADDY_HOST: 'http://localhost:8000'
${CADDYFILE}
    db:
        image: postgres:15.12-alpine
        restart: on-failure
        environment:
            POSTGRES_USER: posthog
            POSTGRES_DB: posthog
            POSTGRES_PASSWORD: posthog
        healthcheck:
            test: ['CMD-SHELL', 'pg_isready -U posthog']
            interval: 5s
            timeout: 30s
            retries: 30

    redis7:
        image: redis:7.2-alpine
        restart: on-failure
        healthcheck:
            test: ['CMD', 'redis-cli', 'ping']
            interval: 3s

    clickhouse:
        image: \${CLICKHOUSE_SERVER_IMAGE:-clickhouse/clickhouse-server:25.6.13.41}
        restart: on-failure
        healthcheck:
            test: ['CMD-SHELL', 'wget --spider http://localhost:8123/ping || exit 1']
            interval: 3s

    zookeeper:
        image: zookeeper:3.7.0
        restart: on-failure

    kafka:
        image: docker.io/redpandadata/redpanda:v25.1.9
        restart: on-failure
        command: ['redpanda', 'start', '--smp 2', '--memory 3G', '--overprovisioned']
        healthcheck:
            test: curl -f http://localhost:9644/v1/status/ready || exit 1
            interval: 3s

    objectstorage:
        image: chrislusf/seaweedfs:4.29
        restart: on-failure
        command: ['server', '-s3', '-s3.port=19000', '-dir=/data']

    seaweedfs:
        image: chrislusf/seaweedfs:4.29
        command: ['server', '-s3', '-s3.port=8333', '-dir=/data']

    worker: &worker
        command: ./bin/docker-worker-celery --with-scheduler
        restart: on-failure
        env_file: .env.services
        environment: &worker_env
            KAFKA_HOSTS: 'kafka'
            DEPLOYMENT: hobby

    web:
        <<: *worker
        command: ./bin/start-backend
        restart: on-failure

    asyncmigrationscheck:
        <<: *worker
        command: python manage.py run_async_migrations --check
        restart: 'no'
        deploy:
            replicas: 0

    plugins:
        image: posthog/posthog-node:latest
        restart: on-failure
        environment:
            PLUGIN_SERVER_MODE: cdp
        volumes:
            - ./share:/share

    ingestion-general:
        image: posthog/posthog-node:latest
        restart: on-failure
        environment:
            PLUGIN_SERVER_MODE: ingestion-v2-combined

    ingestion-sessionreplay:
        image: posthog/posthog-node:latest
        restart: on-failure
        environment:
            PLUGIN_SERVER_MODE: recordings-blob-ingestion-v2

    recording-api:
        image: posthog/posthog-node:latest
        restart: on-failure
        environment:
            PLUGIN_SERVER_MODE: recording-api
            SESSION_RECORDING_API_REDIS_HOST: redis7

    capture:
        image: ghcr.io/posthog/posthog/capture:master
        build:
            context: rust/
        restart: on-failure
        environment:
            CAPTURE_MODE: events

    replay-capture:
        image: ghcr.io/posthog/posthog/capture:master
        build:
            context: rust/
        restart: on-failure
        environment:
            CAPTURE_MODE: recordings

    property-defs-rs:
        image: ghcr.io/posthog/posthog/property-defs-rs:master
        build:
            context: rust/
        restart: on-failure

    feature-flags:
        image: ghcr.io/posthog/posthog/feature-flags:master
        build:
            context: rust/
        restart: on-failure
        healthcheck:
            test: ['CMD', 'curl', '-f', 'http://localhost:3001/_readiness']
            interval: 5s
        volumes:
            - ./share:/share

    livestream:
        image: 'ghcr.io/posthog/posthog/livestream:master'
        restart: on-failure
        depends_on:
            kafka:
                condition: service_started

    elasticsearch:
        image: elasticsearch:7.17.28
        environment:
            - discovery.type=single-node
            - ES_JAVA_OPTS=-Xms256m -Xmx256m
        healthcheck:
            test: ['CMD-SHELL', 'curl -s http://localhost:9200/_cluster/health']
            interval: 10s

    temporal:
        image: temporalio/auto-setup:1.26.2
        restart: on-failure
        environment:
            - DB=postgres12
            - DYNAMIC_CONFIG_FILE_PATH=config/dynamicconfig/development-sql.yaml
        depends_on:
            db:
                condition: service_healthy
            elasticsearch:
                condition: service_healthy

    temporal-admin-tools:
        image: temporalio/admin-tools:1.26.2
        environment:
            - TEMPORAL_CLI_ADDRESS=temporal:7233

    temporal-ui:
        image: temporalio/ui:2.47.2
        depends_on:
            - temporal
        environment:
            - TEMPORAL_ADDRESS=temporal:7233

    temporal-django-worker:
        <<: *worker
        command: ./bin/temporal-django-worker
        environment:
            <<: *worker_env
            TEMPORAL_HOST: temporal
`

const CURRENT_HOBBY = `#
# \`docker-compose\` file used ONLY for hobby deployments (test data in the shape of PostHog's).
#

x-logging: &default-logging
    driver: json-file
    options:
        max-size: '50m'
        max-file: '3'

services:
    db:
        extends:
            file: docker-compose.base.yml
            service: db
        image: \${DOCKER_REGISTRY_PREFIX:-}postgres:15.12-alpine
        logging: *default-logging
        volumes:
            - postgres-data:/var/lib/postgresql/data

    redis7:
        extends:
            file: docker-compose.base.yml
            service: redis7
        logging: *default-logging

    clickhouse:
        extends:
            file: docker-compose.base.yml
            service: clickhouse
        logging: *default-logging
        depends_on:
            - kafka
            - zookeeper
        volumes:
            - ./posthog/posthog/idl:/idl
            - ./posthog/docker/clickhouse/docker-entrypoint-initdb.d:/docker-entrypoint-initdb.d
            - ./posthog/docker/clickhouse/config.xml:/etc/clickhouse-server/config.xml
            - ./posthog/docker/clickhouse/config.d/default.xml:/etc/clickhouse-server/config.d/default.xml
            - ./posthog/docker/clickhouse/users.xml:/etc/clickhouse-server/users.xml
            - ./posthog/docker/clickhouse/user_defined_function.xml:/etc/clickhouse-server/user_defined_function.xml
            - ./posthog/posthog/user_scripts:/var/lib/clickhouse/user_scripts
            - clickhouse-data:/var/lib/clickhouse

    zookeeper:
        extends:
            file: docker-compose.base.yml
            service: zookeeper
        logging: *default-logging
        environment:
            ZOO_AUTOPURGE_PURGEINTERVAL: 1
            ZOO_AUTOPURGE_SNAPRETAINCOUNT: 3
        volumes:
            - zookeeper-data:/data

    kafka:
        extends:
            file: docker-compose.base.yml
            service: kafka
        logging: *default-logging
        depends_on:
            - zookeeper

    kafka-init:
        image: docker.io/redpandadata/redpanda:v25.1.9
        entrypoint: /bin/sh
        logging: *default-logging
        command:
            - -c
            - |
                TOPICS=$$(grep -vE '^[[:space:]]*#' /topics.txt)
                for topic in $$TOPICS; do rpk topic create "$$topic" --brokers kafka:9092 || true; done
        volumes:
            - ./posthog/docker/kafka/topics.txt:/topics.txt:ro
        depends_on:
            kafka:
                condition: service_healthy

    worker:
        extends:
            file: docker-compose.base.yml
            service: worker
        logging: *default-logging
        environment:
            SITE_URL: https://$DOMAIN
            SECRET_KEY: $POSTHOG_SECRET
            ENCRYPTION_SALT_KEYS: $ENCRYPTION_SALT_KEYS
            INTERNAL_API_SECRET: \${INTERNAL_API_SECRET:-$POSTHOG_SECRET}
            OBJECT_STORAGE_ENDPOINT: http://objectstorage:19000
        image: $REGISTRY_URL:$POSTHOG_APP_TAG
        depends_on:
            db:
                condition: service_healthy
            redis7:
                condition: service_healthy
            kafka:
                condition: service_healthy
            web:
                condition: service_started

    web:
        extends:
            file: docker-compose.base.yml
            service: web
        command: /compose/start
        logging: *default-logging
        volumes:
            - ./compose:/compose
        image: $REGISTRY_URL:$POSTHOG_APP_TAG
        environment:
            SITE_URL: https://$DOMAIN
            LIVESTREAM_HOST: 'https://\${DOMAIN}/livestream'
            SECRET_KEY: $POSTHOG_SECRET
            ENCRYPTION_SALT_KEYS: $ENCRYPTION_SALT_KEYS
            OBJECT_STORAGE_ENDPOINT: http://objectstorage:19000
            OBJECT_STORAGE_PUBLIC_ENDPOINT: https://$DOMAIN
        depends_on:
            - db
            - redis7
            - clickhouse
            - kafka
            - objectstorage
            - seaweedfs

    plugins:
        extends:
            file: docker-compose.base.yml
            service: plugins
        image: \${REGISTRY_URL}-node:\${POSTHOG_NODE_TAG:-latest}
        logging: *default-logging
        environment:
            SITE_URL: https://$DOMAIN
            SECRET_KEY: $POSTHOG_SECRET
            ENCRYPTION_SALT_KEYS: $ENCRYPTION_SALT_KEYS
            CDP_REDIS_HOST: redis7
        depends_on:
            - db
            - redis7
            - clickhouse
            - kafka

    ingestion-general:
        extends:
            file: docker-compose.base.yml
            service: ingestion-general
        image: \${REGISTRY_URL}-node:\${POSTHOG_NODE_TAG:-latest}
        logging: *default-logging
        environment:
            ENCRYPTION_SALT_KEYS: $ENCRYPTION_SALT_KEYS
        depends_on:
            - db
            - redis7
            - clickhouse
            - kafka

    ingestion-sessionreplay:
        extends:
            file: docker-compose.base.yml
            service: ingestion-sessionreplay
        image: \${REGISTRY_URL}-node:\${POSTHOG_NODE_TAG:-latest}
        logging: *default-logging
        environment:
            SESSION_RECORDING_V2_S3_ENDPOINT: http://seaweedfs:8333
            ENCRYPTION_SALT_KEYS: $ENCRYPTION_SALT_KEYS
        depends_on:
            - db
            - kafka
            - seaweedfs

    recording-api:
        extends:
            file: docker-compose.base.yml
            service: recording-api
        image: \${REGISTRY_URL}-node:\${POSTHOG_NODE_TAG:-latest}
        logging: *default-logging
        environment:
            SESSION_RECORDING_V2_S3_ENDPOINT: http://seaweedfs:8333
            INTERNAL_API_SECRET: \${INTERNAL_API_SECRET:-$POSTHOG_SECRET}
        depends_on:
            - db
            - seaweedfs

    proxy:
        extends:
            file: docker-compose.base.yml
            service: proxy
        logging: *default-logging
        ports:
            - '80:80'
            - '443:443'
        volumes:
            - caddy-data:/data
        environment:
            CADDY_TLS_BLOCK: $TLS_BLOCK
            CADDY_HOST: '$DOMAIN, http://, https://'
        depends_on:
            - web
            - livestream

    objectstorage:
        extends:
            file: docker-compose.base.yml
            service: objectstorage
        logging: *default-logging
        volumes:
            - objectstorage-data:/data
        ports:
            - '127.0.0.1:19000:19000'

    seaweedfs:
        extends:
            file: docker-compose.base.yml
            service: seaweedfs
        container_name: '\${SEAWEEDFS_DOCKER_NAME:-seaweedfs-main}'
        logging: *default-logging
        ports:
            - '127.0.0.1:8333:8333'
        volumes:
            - seaweedfs:/data
        healthcheck:
            test: ['CMD', 'sh', '-c', "echo 's3.bucket.list' | weed shell | grep -q posthog"]
            interval: 5s

    asyncmigrationscheck:
        extends:
            file: docker-compose.base.yml
            service: asyncmigrationscheck
        image: $REGISTRY_URL:$POSTHOG_APP_TAG
        logging: *default-logging
        environment:
            SECRET_KEY: $POSTHOG_SECRET

    temporal:
        extends:
            file: docker-compose.base.yml
            service: temporal
        logging: *default-logging
        environment:
            - ENABLE_ES=false
        ports:
            - '127.0.0.1:7233:7233'
        volumes:
            - ./posthog/docker/temporal/dynamicconfig:/etc/temporal/config/dynamicconfig

    elasticsearch:
        extends:
            file: docker-compose.base.yml
            service: elasticsearch
        logging: *default-logging

    temporal-admin-tools:
        extends:
            file: docker-compose.base.yml
            service: temporal-admin-tools
        logging: *default-logging
        depends_on:
            - temporal

    temporal-ui:
        extends:
            file: docker-compose.base.yml
            service: temporal-ui
        logging: *default-logging
        ports:
            - '127.0.0.1:8081:8080'
        depends_on:
            temporal:
                condition: service_started
            db:
                condition: service_healthy

    temporal-django-worker:
        command: /compose/temporal-django-worker
        extends:
            file: docker-compose.base.yml
            service: temporal-django-worker
        logging: *default-logging
        volumes:
            - ./compose:/compose
        image: $REGISTRY_URL:$POSTHOG_APP_TAG
        environment:
            SECRET_KEY: $POSTHOG_SECRET
        depends_on:
            - db
            - temporal

    capture:
        build:
            context: ./posthog/rust
        extends:
            file: docker-compose.base.yml
            service: capture
        logging: *default-logging

    replay-capture:
        build:
            context: ./posthog/rust
        extends:
            file: docker-compose.base.yml
            service: replay-capture
        logging: *default-logging

    property-defs-rs:
        build:
            context: ./posthog/rust
        extends:
            file: docker-compose.base.yml
            service: property-defs-rs
        logging: *default-logging
        depends_on:
            kafka-init:
                condition: service_completed_successfully
            db:
                condition: service_healthy

    livestream:
        extends:
            file: docker-compose.base.yml
            service: livestream
        logging: *default-logging
        environment:
            - LIVESTREAM_JWT_SECRET=\${POSTHOG_SECRET}
        volumes:
            - ./posthog/docker/livestream/configs-hobby.yml:/configs/configs.yml

    feature-flags:
        build:
            context: ./posthog/rust
        extends:
            file: docker-compose.base.yml
            service: feature-flags
        logging: *default-logging
        depends_on:
            - db
            - redis7

    cymbal:
        image: ghcr.io/posthog/posthog/cymbal:master
        restart: on-failure
        logging: *default-logging
        volumes:
            - ./share:/share
        environment:
            MAXMIND_DB_PATH: '/share/GeoLite2-City.mmdb'
            INTERNAL_API_SECRET: $POSTHOG_SECRET
        depends_on:
            kafka-init:
                condition: service_completed_successfully
            db:
                condition: service_healthy
            cymbal-resolution:
                condition: service_started

    cymbal-resolution:
        image: ghcr.io/posthog/posthog/cymbal:master
        restart: on-failure
        logging: *default-logging
        environment:
            CYMBAL_MODE: resolution
            INTERNAL_API_SECRET: $POSTHOG_SECRET
        depends_on:
            db:
                condition: service_healthy

volumes:
    zookeeper-data:
    objectstorage-data:
    seaweedfs:
    postgres-data:
    clickhouse-data:
    caddy-data:
`

const OLD_BASE = `#
# docker-compose base file (test data in the shape of an older PostHog's: no env_file).
#

services:
    proxy:
        image: caddy
        entrypoint: sh
        restart: always
        command: -c 'set -x && echo "$$CADDYFILE" > /etc/caddy/Caddyfile && exec caddy run -c /etc/caddy/Caddyfile'
        environment:
            CADDY_TLS_BLOCK: ''
            CADDY_HOST: 'http://localhost:8000'
${CADDYFILE.replace('livestream:8080', 'livestream:8666')}
    db:
        image: postgres:12-alpine
        restart: on-failure
        environment:
            POSTGRES_USER: posthog
            POSTGRES_DB: posthog
            POSTGRES_PASSWORD: posthog
        healthcheck:
            test: ['CMD-SHELL', 'pg_isready -U posthog']
            interval: 5s

    redis:
        image: redis:6.2.7-alpine
        restart: on-failure
        command: redis-server --maxmemory-policy allkeys-lru --maxmemory 200mb

    redis7:
        image: redis:7.2-alpine
        restart: on-failure
        healthcheck:
            test: ['CMD', 'redis-cli', 'ping']
            interval: 3s

    clickhouse:
        image: \${CLICKHOUSE_SERVER_IMAGE:-clickhouse/clickhouse-server:23.12.6.19-alpine}
        restart: on-failure

    zookeeper:
        image: zookeeper:3.7.0
        restart: on-failure

    kafka:
        image: docker.io/redpandadata/redpanda:v23.2.17
        restart: on-failure
        command: ['redpanda', 'start', '--overprovisioned', '--smp 1', '--memory 1G']

    objectstorage:
        image: minio/minio:RELEASE.2022-06-25T15-50-16Z
        restart: on-failure
        environment:
            MINIO_ROOT_USER: object_storage_root_user
            MINIO_ROOT_PASSWORD: object_storage_root_password
        entrypoint: sh
        command: -c 'mkdir -p /data/posthog && minio server --address ":19000" --console-address ":19001" /data'

    worker: &worker
        command: ./bin/docker-worker-celery --with-scheduler
        restart: on-failure
        environment: &worker_env
            DATABASE_URL: 'postgres://posthog:posthog@db:5432/posthog'
            CLICKHOUSE_HOST: 'clickhouse'
            KAFKA_HOSTS: 'kafka'
            REDIS_URL: 'redis://redis:6379/'
            DEPLOYMENT: hobby

    web:
        <<: *worker
        command: ./bin/start-backend
        restart: on-failure

    asyncmigrationscheck:
        <<: *worker
        command: python manage.py run_async_migrations --check
        restart: 'no'
        deploy:
            replicas: 0

    plugins:
        command: ./bin/plugin-server --no-restart-loop
        restart: on-failure
        environment:
            DATABASE_URL: 'postgres://posthog:posthog@db:5432/posthog'
            REDIS_URL: 'redis://redis:6379/'

    capture:
        image: ghcr.io/posthog/posthog/capture:master
        restart: on-failure
        environment:
            CAPTURE_MODE: events

    replay-capture:
        image: ghcr.io/posthog/posthog/capture:master
        restart: on-failure
        environment:
            CAPTURE_MODE: recordings

    feature-flags:
        image: ghcr.io/posthog/posthog/feature-flags:master
        restart: on-failure

    livestream:
        image: 'ghcr.io/posthog/livestream:main'
        restart: on-failure
        depends_on:
            kafka:
                condition: service_started

    cyclotron-janitor:
        image: ghcr.io/posthog/posthog/cyclotron-janitor:master
        restart: on-failure
        environment:
            DATABASE_URL: 'postgres://posthog:posthog@db:5432/cyclotron'

    elasticsearch:
        image: elasticsearch:7.16.2
        environment:
            - discovery.type=single-node

    temporal:
        image: temporalio/auto-setup:1.20.0
        environment:
            - DB=postgresql
            - DYNAMIC_CONFIG_FILE_PATH=config/dynamicconfig/development-sql.yaml
        depends_on:
            - db
            - elasticsearch

    temporal-ui:
        image: temporalio/ui:2.10.3
        depends_on:
            - temporal
        environment:
            - TEMPORAL_ADDRESS=temporal:7233

    temporal-django-worker:
        <<: *worker
        command: ./bin/temporal-django-worker
        environment:
            <<: *worker_env
            TEMPORAL_HOST: temporal
`

const OLD_HOBBY = `#
# \`docker-compose\` file used ONLY for hobby deployments (test data in the shape of an older PostHog's).
#

services:
    db:
        extends:
            file: docker-compose.base.yml
            service: db
        volumes:
            - postgres-data:/var/lib/postgresql/data
    redis:
        extends:
            file: docker-compose.base.yml
            service: redis
        volumes:
            - redis-data:/data
    redis7:
        extends:
            file: docker-compose.base.yml
            service: redis7
    clickhouse:
        extends:
            file: docker-compose.base.yml
            service: clickhouse
        depends_on:
            - kafka
            - zookeeper
        volumes:
            - ./posthog/posthog/idl:/idl
            - ./posthog/docker/clickhouse/docker-entrypoint-initdb.d:/docker-entrypoint-initdb.d
            - ./posthog/docker/clickhouse/config.xml:/etc/clickhouse-server/config.xml
            - ./posthog/docker/clickhouse/users.xml:/etc/clickhouse-server/users.xml
            - clickhouse-data:/var/lib/clickhouse
    zookeeper:
        extends:
            file: docker-compose.base.yml
            service: zookeeper
        volumes:
            - zookeeper-data:/data
    kafka:
        extends:
            file: docker-compose.base.yml
            service: kafka
        depends_on:
            - zookeeper
    worker:
        extends:
            file: docker-compose.base.yml
            service: worker
        environment:
            SITE_URL: https://$DOMAIN
            SECRET_KEY: $POSTHOG_SECRET
            OBJECT_STORAGE_ENDPOINT: http://objectstorage:19000
            ENCRYPTION_SALT_KEYS: $ENCRYPTION_SALT_KEYS
        image: $REGISTRY_URL:$POSTHOG_APP_TAG
    web:
        extends:
            file: docker-compose.base.yml
            service: web
        command: /compose/start
        volumes:
            - ./compose:/compose
        image: $REGISTRY_URL:$POSTHOG_APP_TAG
        environment:
            SITE_URL: https://$DOMAIN
            SECRET_KEY: $POSTHOG_SECRET
            ENCRYPTION_SALT_KEYS: $ENCRYPTION_SALT_KEYS
        depends_on:
            - db
            - redis
            - clickhouse
            - kafka
            - objectstorage
    plugins:
        extends:
            file: docker-compose.base.yml
            service: plugins
        image: $REGISTRY_URL:$POSTHOG_APP_TAG
        environment:
            SITE_URL: https://$DOMAIN
            SECRET_KEY: $POSTHOG_SECRET
        depends_on:
            - db
            - redis
            - redis7
            - clickhouse
            - kafka
            - objectstorage
    proxy:
        extends:
            file: docker-compose.base.yml
            service: proxy
        ports:
            - '80:80'
            - '443:443'
        environment:
            CADDY_TLS_BLOCK: $TLS_BLOCK
            CADDY_HOST: '$DOMAIN, http://, https://'
        depends_on:
            - web
    objectstorage:
        extends:
            file: docker-compose.base.yml
            service: objectstorage
        ports:
            - '19000:19000'
            - '19001:19001'
        volumes:
            - objectstorage:/data
    asyncmigrationscheck:
        extends:
            file: docker-compose.base.yml
            service: asyncmigrationscheck
        image: $REGISTRY_URL:$POSTHOG_APP_TAG
        environment:
            SECRET_KEY: $POSTHOG_SECRET
    temporal:
        extends:
            file: docker-compose.base.yml
            service: temporal
        environment:
            - ENABLE_ES=false
        ports:
            - 7233:7233
        volumes:
            - ./posthog/docker/temporal/dynamicconfig:/etc/temporal/config/dynamicconfig
    elasticsearch:
        extends:
            file: docker-compose.base.yml
            service: elasticsearch
    temporal-ui:
        extends:
            file: docker-compose.base.yml
            service: temporal-ui
        ports:
            - 8081:8080
        depends_on:
            - temporal
    temporal-django-worker:
        command: /compose/temporal-django-worker
        extends:
            file: docker-compose.base.yml
            service: temporal-django-worker
        volumes:
            - ./compose:/compose
        image: $REGISTRY_URL:$POSTHOG_APP_TAG
        environment:
            SECRET_KEY: $POSTHOG_SECRET
        depends_on:
            - db
            - temporal
    capture:
        extends:
            file: docker-compose.base.yml
            service: capture
    replay-capture:
        extends:
            file: docker-compose.base.yml
            service: replay-capture
    feature-flags:
        extends:
            file: docker-compose.base.yml
            service: feature-flags
        depends_on:
            - db
            - redis7
    livestream:
        extends:
            file: docker-compose.base.yml
            service: livestream
        ports:
            - '8666:8666'
    cyclotron-janitor:
        extends:
            file: docker-compose.base.yml
            service: cyclotron-janitor
        depends_on:
            - db

volumes:
    zookeeper-data:
    objectstorage:
    postgres-data:
    clickhouse-data:
    redis-data:
`

/** Files (repository path → content) of the PostHog checkout the compose files need, by shape. */
export function hobbyFiles(shape: HobbyShape): Record<string, string> {
  if (shape === 'old') return { 'docker-compose.base.yml': OLD_BASE, 'docker-compose.hobby.yml': OLD_HOBBY }
  return {
    'docker-compose.base.yml': CURRENT_BASE,
    'docker-compose.hobby.yml': CURRENT_HOBBY,
    '.env.services':
      'DATABASE_URL=postgres://posthog:posthog@db:5432/posthog\nREDIS_URL=redis://redis7:6379/\nIS_BEHIND_PROXY=true\n',
  }
}

/** The services each shape defines (what `docker compose config --services` lists with nothing disabled). */
export function hobbyServices(shape: HobbyShape): string[] {
  const text = hobbyFiles(shape)['docker-compose.hobby.yml']!
  const body = text.slice(text.indexOf('\nservices:\n'), text.indexOf('\nvolumes:\n'))
  return [...body.matchAll(/^ {4}([a-z0-9-]+):$/gm)].map((m) => m[1]!)
}

/** A shape's compose pair, parsed. */
export function hobbyPair(shape: HobbyShape): { hobby: ComposeFile; base: ComposeFile } {
  const files = hobbyFiles(shape)
  return {
    hobby: parseCompose(files['docker-compose.hobby.yml']!, 'docker-compose.hobby.yml'),
    base: parseCompose(files['docker-compose.base.yml']!, 'docker-compose.base.yml'),
  }
}

/** PostHog's own newest compose pair (../shared/fixtures/posthog), parsed, when ../shared has it. */
export function upstreamPair(): { hobby: ComposeFile; base: ComposeFile } | undefined {
  const dir = UPSTREAM_POSTHOG
  if (!dir) return undefined
  const read = (f: string) => parseCompose(fs.readFileSync(path.join(dir, f), 'utf8'), f)
  return { hobby: read('docker-compose.hobby.yml'), base: read('docker-compose.base.yml') }
}
