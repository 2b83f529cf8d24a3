#!/usr/bin/env bash
# The whole test suite: lint, types, unit, contract, integration (real Kafka, Prometheus,
# Alertmanager started and stopped by the tests themselves on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
$PYTHON -m ruff check detectors formats streams testbed tests benchmarks
$PYTHON -m mypy detectors formats streams testbed
$PYTHON -m pytest "$@"
