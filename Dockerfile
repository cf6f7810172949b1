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
# In the container the HTTP port listens on every interface at 8080 (GET /healthz for the
# HEALTHCHECK below, GET /metrics for Prometheus): a config.toml you mount needs the same
# `[http] host = "0.0.0.0"` and `port = 8080`.
COPY config.example.toml ./config.toml
RUN sed -i -e '/^\[http\]/,/^\[/{s/^host = .*/host = "0.0.0.0"/;s/^# *port = .*/port = 8080/}' config.toml \
    && grep -q '^port = 8080$' config.toml && grep -q '^host = "0.0.0.0"$' config.toml
COPY queries ./queries
COPY alerts ./alerts
COPY demo ./demo

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin listener \
    && mkdir -p /data && chown listener /data
USER listener
VOLUME ["/data"]
EXPOSE 8080

# 200 while the scheduler runs and the database answers; a 503 (or no answer) fails the check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:8080/healthz', timeout=4)"]

CMD ["listener", "run"]
