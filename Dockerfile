# syntax=docker/dockerfile:1
#
# poller's container image (DESIGN §1.2; ops anchors §7).
#
#   docker build -t poller .
#   docker run --rm -p 8080:8080 -v "$PWD/mappings:/etc/poller/mappings:ro" \
#     -v "$PWD/functions:/etc/poller/functions:ro" poller
#   (the second volume holds the code of functions declared under `Functions:`: a CodeUri is
#   relative to its mapping file, so `../functions/telemetry` resolves to /etc/poller/functions)
#   docker run --rm -v "$PWD/my-settings:/etc/poller:ro" poller validate --config /etc/poller/poller.yaml
#
# Two stages: the builder turns poller and every dependency into wheels; the final image installs
# those wheels (mounted from the builder, so no wheel, source tree or compiler stays in a layer) on
# the same slim Python. `poller` itself is PID 1 (exec-form ENTRYPOINT, no shell), so SIGTERM reaches
# Python and starts the drain (`shutdown.drain_seconds`, default 25 s): give `docker stop` a longer
# timeout (`-t 30`) and Kubernetes a longer terminationGracePeriodSeconds (config/k8s/).

FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what building the wheel reads (.dockerignore keeps the rest of the tree out).
COPY pyproject.toml README.md ./
COPY poller/ poller/
# Every dependency ships manylinux wheels for CPython 3.11, so no compiler is needed here either.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .


FROM python:3.11-slim

LABEL org.opencontainers.image.title="poller" \
      org.opencontainers.image.description="Self-hosted event-source mappings (SQS, Kinesis, DynamoDB Streams, Kafka) with AWS Lambda's batching, retry and on-failure semantics" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, numeric, unprivileged identity: Kubernetes' runAsNonRoot can only verify a numeric USER,
# and volumes (fsGroup) and host mounts need to know it in advance.
RUN groupadd --system --gid 10001 poller \
 && useradd --system --uid 10001 --gid poller --home-dir /var/lib/poller --no-create-home \
        --shell /usr/sbin/nologin poller

# The wheels are bind-mounted from the builder, so only the installed packages stay in the image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels --root-user-action=ignore /wheels/*.whl

# Default settings, so the image runs on its own: mappings from /etc/poller/mappings (mount a
# directory of mapping YAML there) and stream checkpoints in the state volume. Kubernetes mounts its
# settings ConfigMap over /etc/poller (config/k8s/); POLLER_* variables override any key.
RUN mkdir -p /etc/poller/mappings /var/lib/poller \
 && printf '%s\n' \
        '# Default settings of the poller image; mount your own over /etc/poller (DESIGN 1.3).' \
        'mappings: [mappings/]' \
        'state:' \
        '  path: /var/lib/poller/poller-state.sqlite3' \
        > /etc/poller/poller.yaml \
 && chown poller:poller /var/lib/poller

# The only path poller writes (SQLite checkpoints, state.path); the root filesystem can be read-only.
VOLUME ["/var/lib/poller"]
WORKDIR /var/lib/poller
USER 10001:10001

# http.port: /metrics /healthz /readyz /status (DESIGN §1.6). No HEALTHCHECK: Kubernetes uses its own
# probes (liveness /healthz, readiness /readyz), and the port can be moved with POLLER_HTTP__PORT.
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["poller"]
CMD ["run", "--config", "/etc/poller/poller.yaml"]
