# The tablestream worker image: `faust -A app worker` from the repository root.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv/tablestream
# The pinned runtime dependencies first (scripts/lock.sh writes requirements.lock): a layer that
# changes only with them, and the same versions in every build. No dev tools, no test broker.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY agents ./agents
COPY tables ./tables
COPY sql ./sql
COPY core ./core
COPY examples ./examples
# --no-deps: everything it needs came from the lock above.
RUN pip install --no-cache-dir --no-deps . \
    && groupadd --gid 10001 tablestream \
    && useradd --uid 10001 --gid 10001 --create-home tablestream \
    && mkdir -p /var/lib/tablestream && chown 10001:10001 /var/lib/tablestream
# Numeric, so that a pod's runAsNonRoot can verify it (deploy/k8s/worker.yaml: runAsUser 10001).
USER 10001:10001

ENV TABLESTREAM_DATA_DIR=/var/lib/tablestream \
    TABLESTREAM_WEB_HOST=0.0.0.0 \
    TABLESTREAM_WEB_PORT=6066
EXPOSE 6066
VOLUME /var/lib/tablestream
CMD ["faust", "-A", "app", "worker", "-l", "info"]
