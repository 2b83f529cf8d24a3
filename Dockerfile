# dialguard stream worker image (used by docker-compose.yml as worker1/worker2).
#   docker build -t dialguard:0.1.0 .
#   docker run --rm -e DIALGUARD_BROKER=kafka://HOST:9092 -p 9464:9464 dialguard:0.1.0
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY detectors ./detectors
COPY streams ./streams
COPY testbed ./testbed
RUN pip install . \
    && useradd --system --user-group --home-dir /var/lib/dialguard --create-home dialguard \
    && mkdir -p /etc/dialguard

# Faust keeps its local table state under the working directory (a volume in compose).
WORKDIR /var/lib/dialguard
USER dialguard

EXPOSE 9464
CMD ["dialguard", "worker", "--metrics-port", "9464"]
