# One image, several entry points (see docker-compose.yml):
#   web      gunicorn --bind 0.0.0.0:8000 --workers 2 --threads 8 'app:create_portal()'  (at most 4 of each process's 8 threads hold live streams)
#   migrate  python -m app.manage migrate        (also: python -m app.manage seed-demo)
#   ingest   python -m app.ingest
#   sim      python -m simulator run
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/wattline

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

RUN groupadd --system --gid 10001 wattline \
    && useradd --system --uid 10001 --gid wattline --home-dir /srv/wattline \
       --shell /usr/sbin/nologin wattline

COPY app/ ./app/
COPY simulator/ ./simulator/
COPY roi/ ./roi/
COPY partners/ ./partners/

USER wattline

EXPOSE 8000

# The web service's probe; docker-compose.yml gives the non-web services their own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=4)"]

CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "8", "app:create_portal()"]
