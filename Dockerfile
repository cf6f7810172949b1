# The same install as `make` and .ci/run: the project into Python 3.11, run as `listener run`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LISTENER_CONFIG=/app/config.toml \
    LISTENER_DATABASE=sqlite:////data/listener.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY listener ./listener
RUN pip install --no-cache-dir --disable-pip-version-check .

# The example configuration; mount your own over /app/config.toml, /app/queries and /app/alerts.
COPY config.example.toml ./config.toml
COPY queries ./queries
COPY alerts ./alerts
COPY demo ./demo

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin listener \
    && mkdir -p /data && chown listener /data
USER listener
VOLUME ["/data"]

CMD ["listener", "run"]
