# amiwatch: one image for every service; the `amiwatch` command is the entry point.
#
#   docker build -t amiwatch .
#   docker run --rm amiwatch --help
#   docker run --rm -e KAFKA_BOOTSTRAP_SERVERS=broker:9092 amiwatch ingest --worker ingest-1
#
# deploy/docker-compose.yml builds it and runs every service from it. Only the
# packages (amiwatch, services, simulators, schemas) go in: no tests, no deploy
# files, no local state (.dockerignore).

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/amiwatch
WORKDIR /opt/amiwatch-src
# The dependencies first, in a layer that changes only with pyproject.toml: install the
# project's requirements from a stub of it, then drop the stub.
COPY pyproject.toml README.md ./
RUN mkdir amiwatch && touch amiwatch/__init__.py \
 && /opt/amiwatch/bin/pip install . \
 && /opt/amiwatch/bin/pip uninstall -y amiwatch \
 && rm -rf amiwatch build
COPY amiwatch/ amiwatch/
COPY services/ services/
COPY simulators/ simulators/
COPY schemas/ schemas/
RUN /opt/amiwatch/bin/pip install --no-deps . \
 && /opt/amiwatch/bin/amiwatch --help >/dev/null

FROM python:3.11-slim-bookworm
# tini forwards SIGTERM to the service (which then commits what it holds) and reaps children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --uid 10001 --home-dir /var/lib/amiwatch --create-home amiwatch
COPY --from=build /opt/amiwatch /opt/amiwatch
ENV PATH=/opt/amiwatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AMIWATCH_STATE_DIR=/var/lib/amiwatch \
    AMIWATCH_API_HOST=0.0.0.0
USER amiwatch
WORKDIR /var/lib/amiwatch
VOLUME /var/lib/amiwatch
# API (and its /metrics), ingest's /metrics, the detector's /metrics.
EXPOSE 8000 9101 9102
ENTRYPOINT ["/usr/bin/tini", "--", "amiwatch"]
CMD ["--help"]
