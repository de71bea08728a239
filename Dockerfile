# The tablestream worker image: `faust -A app worker` from the repository root.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv/tablestream
COPY pyproject.toml README.md ./
COPY app ./app
COPY agents ./agents
COPY tables ./tables
COPY sql ./sql
COPY core ./core
COPY examples ./examples
RUN pip install --no-cache-dir . && useradd --create-home tablestream \
    && mkdir -p /var/lib/tablestream && chown tablestream /var/lib/tablestream
USER tablestream

ENV TABLESTREAM_DATA_DIR=/var/lib/tablestream \
    TABLESTREAM_WEB_HOST=0.0.0.0 \
    TABLESTREAM_WEB_PORT=6066
EXPOSE 6066
VOLUME /var/lib/tablestream
CMD ["faust", "-A", "app", "worker", "-l", "info"]
