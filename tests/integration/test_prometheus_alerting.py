"""The analysts' alerting path with real servers (issue 4).

A simulated cloud-dialer campaign is replayed through the real detection loop
(:func:`streams.replay.replay`, what ``dialguard replay`` runs) into a
:class:`~streams.metrics.DialguardMetrics` served on 127.0.0.1; the real
``prometheus`` binary scrapes it every second and evaluates the project's own
rule file (deploy/prometheus/rules/dialguard.yml) every second; the real
Alertmanager receives Prometheus's alerts and posts them to a webhook served
by this test.

* test 1: ``DialguardBulkDialerBurst`` is inactive before the campaign and
  reaches state ``firing`` in Prometheus's ``/api/v1/alerts`` after it.
* test 2: the webhook receives that alert from Alertmanager.

Servers bind 127.0.0.1 on free ports, every wait is bounded, every process is
stopped in fixture teardown.  Binaries come from apt (``prometheus``,
``prometheus-alertmanager``): ``scripts/install-prometheus.sh``; missing
binaries FAIL the tests.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from detectors.alerts import Alert
from detectors.config import load_settings
from detectors.engine import Detector
from detectors.numbers import NumberNormaliser
from formats.reading import read_paths
from streams.metrics import DialguardMetrics
from streams.replay import replay
from testbed.simulation import SimConfig, simulate, write_day

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "dialguard.yml"
INSTALL_HINT = ("install with: sudo scripts/install-prometheus.sh"
                " (apt: prometheus prometheus-alertmanager)")
BULK_PROFILES = {"cloud_dialer", "dialer_burst", "ring_once", "marketing_blast"}
WAIT_S = 60.0  # bound on every wait for a server to reach a state


def binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.fail(f"{' / '.join(names)} not found on PATH; {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_S,
             proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> Any:
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log is not None else ""
            pytest.fail(f"{what}: process exited with {proc.returncode}\n{tail}")
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError) as exc:  # not up yet
            last_error = exc
        time.sleep(0.25)
    tail = log.read_text()[-3000:] if log is not None else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})"
                f"\n{tail}")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path


def start(cmd: list[str], url: str, log: Path, what: str) -> Server:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    server = Server(proc, url, log)
    wait_for(f"{what} to become ready",
             lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=2).status == 200,
             proc=proc, log=log)
    return server


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)


@dataclass
class Webhook:
    """A tiny Alertmanager webhook receiver on 127.0.0.1."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alerts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [a for body in self.received for a in body.get("alerts", [])]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prometheus")


@pytest.fixture(scope="module")
def metrics() -> Iterator[tuple[DialguardMetrics, str]]:
    """The pipeline's metrics, served on 127.0.0.1 like ``--metrics-port`` does."""
    m = DialguardMetrics(profiles=load_settings().rules)
    server = m.serve(0, addr="127.0.0.1")
    try:
        yield m, f"127.0.0.1:{server.server_port}"
    finally:
        m.close()


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with hook.lock:
                hook.received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{httpd.server_address[1]}/critical"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def alertmanager(workdir: Path, webhook: Webhook) -> Iterator[Server]:
    exe = binary("prometheus-alertmanager", "alertmanager")
    port = free_port()
    config = {
        "route": {
            "receiver": "test-webhook",
            "group_by": ["alertname", "profile"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "test-webhook",
                       "webhook_configs": [{"url": webhook.url, "send_resolved": False}]}],
    }
    cfg = workdir / "alertmanager.yml"
    cfg.write_text(yaml.safe_dump(config))
    (workdir / "am-data").mkdir()
    server = start(
        [exe, f"--config.file={cfg}", f"--storage.path={workdir / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
         "--log.level=warn"],
        f"http://127.0.0.1:{port}", workdir / "alertmanager.log", "Alertmanager",
    )
    try:
        yield server
    finally:
        stop(server)


@pytest.fixture(scope="module")
def prometheus(workdir: Path, metrics: tuple[DialguardMetrics, str],
               alertmanager: Server) -> Iterator[Server]:
    """Real Prometheus: 1 s scrape and evaluation, the project's rules, our Alertmanager."""
    exe = binary("prometheus")
    _, target = metrics
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                   "scrape_timeout": "1s"},
        "rule_files": [str(RULES)],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [alertmanager.url.removeprefix("http://")]}]}]},
        "scrape_configs": [{"job_name": "dialguard",
                            "static_configs": [{"targets": [target]}]}],
    }
    cfg = workdir / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    server = start(
        [exe, f"--config.file={cfg}", f"--storage.tsdb.path={workdir / 'prom-data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        f"http://127.0.0.1:{port}", workdir / "prometheus.log", "Prometheus",
    )
    try:
        yield server
    finally:
        stop(server)


def prom_query(server: Server, query: str) -> list[dict[str, Any]]:
    url = f"{server.url}/api/v1/query?query={urllib.parse.quote(query)}"
    body = get_json(url)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def bulk_alerts(server: Server) -> list[dict[str, Any]]:
    body = get_json(f"{server.url}/api/v1/alerts")
    return [a for a in body["data"]["alerts"]
            if a["labels"]["alertname"] == "DialguardBulkDialerBurst"]


def rules_evaluated(server: Server) -> bool:
    """Every rule group has been evaluated at least once (Prometheus reports year 1 before)."""
    groups = get_json(f"{server.url}/api/v1/rules")["data"]["groups"]
    return bool(groups) and all(not g["lastEvaluation"].startswith("0001") for g in groups)


@pytest.fixture(scope="module")
def campaign(workdir: Path, prometheus: Server,
             metrics: tuple[DialguardMetrics, str]) -> list[Alert]:
    """Replay a simulated cloud-dialer campaign once Prometheus has seen the idle pipeline."""
    m, _ = metrics
    # Prometheus has scraped the counters at zero and evaluated the rules on them.
    wait_for("the first scrape",
             lambda: prom_query(prometheus, 'dialguard_alerts_total{profile="cloud_dialer"}'),
             proc=prometheus.proc, log=prometheus.log)
    wait_for("the rules to be evaluated on them", lambda: rules_evaluated(prometheus),
             proc=prometheus.proc, log=prometheus.log)
    assert bulk_alerts(prometheus) == [], "alert fired before any campaign"

    config = SimConfig.preset(
        "small", subscribers=300, hours=2.0, couriers=2, dispatch=0, notice=0, enterprise=0,
        cloud_dialer=2, rotating_pool=0, ring_once=0, marketing_blast=0, repeat_refused=0,
    )
    day = simulate(config, seed=7)
    files = write_day(day, workdir / "campaign.jsonl")
    assert {c.cls for c in day.campaigns} == {"cloud_dialer"}
    settings = load_settings()
    records = read_paths([str(files["records"])], "json",
                         NumberNormaliser(settings.input.region), settings.input, 300.0)
    alerts: list[Alert] = []
    summary = replay(records, Detector(settings), alerts.append, None, m)
    assert summary.calls > 1000
    assert alerts, "the detector raised no alert on a cloud-dialer campaign"
    dialers = day.labels.members("cloud_dialer")
    assert {a.caller for a in alerts} <= dialers, "alerts on numbers outside the campaign"
    return alerts


def test_bulk_dialer_burst_fires_in_prometheus(prometheus: Server, campaign: list[Alert]) -> None:
    started = time.monotonic()
    firing = wait_for(
        "DialguardBulkDialerBurst to fire",
        lambda: [a for a in bulk_alerts(prometheus) if a["state"] == "firing"],
        proc=prometheus.proc, log=prometheus.log,
    )
    waited = time.monotonic() - started
    profiles = {a["labels"]["profile"] for a in firing}
    raised = {a.profile for a in campaign if a.kind == "number"}
    assert profiles <= BULK_PROFILES and profiles <= raised, (profiles, raised)
    assert all(a["labels"]["severity"] == "critical" for a in firing)
    assert "alert(s)" in firing[0]["annotations"]["description"]
    # Prometheus saw exactly the alerts the detector raised, by profile
    counted = {r["metric"]["profile"]: float(r["value"][1]) for r in prom_query(
        prometheus, 'sum by (profile) (dialguard_alerts_total{kind="number"}) > 0')}
    expected: dict[str, float] = {}
    for a in campaign:
        expected[a.profile] = expected.get(a.profile, 0) + 1
    assert counted == expected
    print(f"\nDialguardBulkDialerBurst firing {waited:.1f} s after the replay ended")


def test_alertmanager_delivers_to_the_webhook(prometheus: Server, alertmanager: Server,
                                              webhook: Webhook, campaign: list[Alert]) -> None:
    started = time.monotonic()
    delivered = wait_for(
        "the webhook to receive DialguardBulkDialerBurst",
        lambda: [a for a in webhook.alerts()
                 if a["labels"].get("alertname") == "DialguardBulkDialerBurst"],
        proc=alertmanager.proc, log=alertmanager.log,
    )
    waited = time.monotonic() - started
    alert = delivered[0]
    assert alert["status"] == "firing"
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["profile"] in {a.profile for a in campaign}
    assert alert["annotations"]["summary"].startswith("Bulk outbound calling detected")
    # no subscriber number leaves the metrics path
    callers = {a.caller for a in campaign if a.caller}
    payload = json.dumps(webhook.received)
    assert not any(c in payload or c.lstrip("+") in payload for c in callers)
    print(f"\nwebhook received DialguardBulkDialerBurst {waited:.1f} s after test start")
