# kefu for several workers on PostgreSQL (docker-compose.yml): the serving dependencies and psycopg.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY bot bot
COPY adapters adapters
COPY knowledge knowledge
COPY commerce commerce
COPY examples examples
COPY deploy deploy
RUN pip install --no-cache-dir -c constraints.txt '.[postgres]' && mkdir -p /var/lib/kefu
ENV KEFU_CONFIG=/app/deploy/kefu.toml PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
CMD ["kefu", "serve"]
