#!/bin/sh
# Install the Prometheus server (with promtool) and Alertmanager (with amtool)
# from Debian/Ubuntu apt, for tests/deploy/test_prometheus_rules.py,
# tests/deploy/test_grafana.py and tests/integration/test_prometheus_alerting.py.
#
#   sudo scripts/install-prometheus.sh      (or as root; idempotent)
#
# Packages: prometheus (2.42 on Debian 12: /usr/bin/prometheus, /usr/bin/promtool)
# and prometheus-alertmanager (0.25: /usr/bin/prometheus-alertmanager,
# /usr/bin/amtool). The tests start their own servers on 127.0.0.1; the
# packages' system services are not wanted: on a machine without systemd (CI
# containers) the maintainer scripts must not try to start them, so a
# policy-rc.d that denies service starts is in place during the install, and
# any running package service is stopped afterwards where systemd exists.
set -eu

PACKAGES="prometheus prometheus-alertmanager"

have_all() {
    command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 &&
        { command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; } &&
        command -v amtool >/dev/null 2>&1
}

if have_all; then
    echo "install-prometheus: already installed: $(prometheus --version 2>&1 | head -n 1)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-prometheus: run as root (or install sudo)" >&2
        exit 1
    fi
fi

# Deny service starts from maintainer scripts (exit 101 = action forbidden),
# restoring whatever policy-rc.d was there before.
POLICY=/usr/sbin/policy-rc.d
BACKUP=""
if [ -e "$POLICY" ]; then
    BACKUP="$(mktemp)"
    $SUDO cp -p "$POLICY" "$BACKUP"
fi
restore_policy() {
    if [ -n "$BACKUP" ]; then
        $SUDO cp -p "$BACKUP" "$POLICY"
        rm -f "$BACKUP"
    else
        $SUDO rm -f "$POLICY"
    fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
$SUDO chmod 755 "$POLICY"

export DEBIAN_FRONTEND=noninteractive
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $PACKAGES

# Where systemd runs, the units may have been enabled; the tests do not need them.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus prometheus-alertmanager prometheus-node-exporter \
        >/dev/null 2>&1 || true
fi

if ! have_all; then
    echo "install-prometheus: prometheus / promtool / alertmanager / amtool still missing" >&2
    exit 1
fi
echo "install-prometheus: $(prometheus --version 2>&1 | head -n 1)"
echo "install-prometheus: $( (prometheus-alertmanager --version || alertmanager --version) 2>&1 | head -n 1)"
