"""Static checks of docker-compose.yml and the Dockerfile (no Docker engine needed).

What a `docker compose up` would trip over first: a service named but not
defined, a host file that is not in the repo, an image that floats, two
services on one host port, and addresses in the monitoring configs that do not
match the compose services.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _depends_on(svc: dict[str, Any]) -> list[str]:
    deps = svc.get("depends_on") or []
    return list(deps) if isinstance(deps, dict | list) else [deps]


def _volume_parts(entry: Any) -> tuple[str, str]:
    """(source, target) of a short "src:dst[:mode]" or long-syntax volume entry."""
    if isinstance(entry, dict):
        return str(entry.get("source", "")), str(entry["target"])
    parts = str(entry).split(":")
    if len(parts) == 1:  # anonymous volume
        return "", parts[0]
    return parts[0], parts[1]


def _is_host_path(source: str) -> bool:
    return source.startswith(("./", "../", "/", "~"))


def _host_ports(svc: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(host ip, host port, protocol) of each published port."""
    out = []
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            if "published" in entry:
                out.append(
                    (str(entry.get("host_ip", "")), int(entry["published"]),
                     str(entry.get("protocol", "tcp")))
                )
            continue
        spec, _, proto = str(entry).partition("/")
        parts = spec.split(":")
        if len(parts) == 1:
            continue  # container port only: Docker picks a random host port
        host_ip = parts[0] if len(parts) == 3 else ""
        host = parts[-2]
        if "-" in host:
            lo, hi = (int(p) for p in host.split("-"))
            out.extend((host_ip, p, proto or "tcp") for p in range(lo, hi + 1))
        else:
            out.append((host_ip, int(host), proto or "tcp"))
    return out


def _env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(str(e).split("=", 1) for e in env)
    return {str(k): str(v) for k, v in env.items()}


def _flag(command: list[str], flag: str) -> str | None:
    for i, arg in enumerate(command):
        if arg == flag and i + 1 < len(command):
            return str(command[i + 1])
        if str(arg).startswith(flag + "="):
            return str(arg).split("=", 1)[1]
    return None


def _workers(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: svc for name, svc in services.items()
        if isinstance(svc.get("command"), list) and svc["command"][:2] == ["dialguard", "worker"]
    }


# -- structure -------------------------------------------------------------

def test_expected_services_are_there(services: dict[str, dict[str, Any]]) -> None:
    for name in ("kafka", "prometheus", "alertmanager", "grafana"):
        assert name in services, name
    assert len(_workers(services)) >= 2, "two dialguard workers share the CDR partitions"


def test_depends_on_names_defined_services(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for dep in _depends_on(svc):
            assert dep in services, f"{name} depends on undefined service {dep!r}"
            assert dep != name


def test_depends_on_has_no_cycle(services: dict[str, dict[str, Any]]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        assert state.get(name) != 1, f"dependency cycle: {' -> '.join([*path, name])}"
        state[name] = 1
        for dep in _depends_on(services[name]):
            visit(dep, [*path, name])
        state[name] = 2

    for name in services:
        visit(name, [])


def test_healthcheck_conditions_have_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        deps = svc.get("depends_on")
        if not isinstance(deps, dict):
            continue
        for dep, cond in deps.items():
            if (cond or {}).get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy"


def test_mounted_host_paths_exist(services: dict[str, dict[str, Any]]) -> None:
    checked = 0
    for name, svc in services.items():
        for entry in svc.get("volumes") or []:
            source, target = _volume_parts(entry)
            assert target.startswith("/"), f"{name}: container path {target!r} is not absolute"
            if _is_host_path(source):
                assert not source.startswith(("/", "~")), (
                    f"{name}: {source} is outside the repository"
                )
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
                checked += 1
    assert checked >= 4  # dialguard.toml, prometheus, alertmanager, grafana


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, svc in compose["services"].items():
        for entry in svc.get("volumes") or []:
            source, _ = _volume_parts(entry)
            if source and not _is_host_path(source):
                assert source in declared, f"{name} uses undeclared volume {source!r}"
                used.add(source)
    assert used, "state lives in named volumes"
    assert not declared - used, f"declared but unused volumes: {declared - used}"


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        image = svc.get("image")
        assert image or svc.get("build"), f"{name} has neither image nor build"
        if not image:
            continue
        if "@sha256:" in image:
            continue
        repo, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag and repo, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} floats"
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} names no version"


def test_host_ports_do_not_clash(services: dict[str, dict[str, Any]]) -> None:
    seen: dict[tuple[int, str], str] = {}
    for name, svc in services.items():
        for _ip, port, proto in _host_ports(svc):
            key = (port, proto)
            assert key not in seen, f"host port {port}/{proto}: {seen[key]} and {name}"
            seen[key] = name
    assert (29092, "tcp") in seen  # Kafka reachable from the host


# -- Kafka and the workers ---------------------------------------------------

def test_kafka_is_kraft_with_a_valid_cluster_id(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    cluster_id = env["CLUSTER_ID"]
    raw = base64.urlsafe_b64decode(cluster_id + "=" * (-len(cluster_id) % 4))
    assert len(cluster_id) == 22 and len(raw) == 16, "Kafka wants a base64 16-byte UUID"
    names = {entry.split("://")[0] for entry in env["KAFKA_LISTENERS"].split(",")}
    protocol_map = dict(
        p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert names <= set(protocol_map)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in names
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in names
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"  # one broker


def test_workers_reach_the_broker_by_an_advertised_listener(
    services: dict[str, dict[str, Any]],
) -> None:
    advertised = _env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    endpoints = {a.split("://", 1)[1] for a in advertised.split(",")}
    for name, svc in _workers(services).items():
        broker = _env(svc).get("DIALGUARD_BROKER") or _flag(svc["command"], "--broker")
        assert broker, f"{name} has no broker"
        url = urlsplit(broker)
        assert url.scheme == "kafka"
        assert url.hostname in services, f"{name}: broker host {url.hostname} is no service"
        assert url.netloc in endpoints, f"{name}: {url.netloc} is not advertised by Kafka"
        assert "kafka" in _depends_on(svc)


def test_worker_metrics_ports_match_prometheus(services: dict[str, dict[str, Any]]) -> None:
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in prom["scrape_configs"] for sc in job.get("static_configs", [])
        for t in sc["targets"]
    }
    workers = _workers(services)
    published: list[int] = []
    for name, svc in workers.items():
        port = _flag(svc["command"], "--metrics-port")
        assert port is not None, f"{name} sets no --metrics-port"
        assert f"{name}:{port}" in targets, f"Prometheus does not scrape {name}:{port}"
        assert any(str(p).split(":")[-1] == port for p in svc.get("ports") or []), name
        published.extend(p for _ip, p, _proto in _host_ports(svc))
        config = _flag(svc["command"], "--config")
        if config:  # the config file the worker reads is mounted into it
            mounted = [_volume_parts(v)[1] for v in svc.get("volumes") or []]
            assert config in mounted, f"{name} reads {config}, which is not mounted"
    assert len(set(published)) == len(workers), "each worker on its own host port"


def test_monitoring_addresses_name_services(services: dict[str, dict[str, Any]]) -> None:
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    for am in prom.get("alerting", {}).get("alertmanagers", []):
        for sc in am.get("static_configs", []):
            for target in sc["targets"]:
                assert target.split(":")[0] in services, target
    alertmanager = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    urls = [
        hook["url"] for recv in alertmanager.get("receivers", [])
        for hook in recv.get("webhook_configs") or []
    ]
    for url in urls:
        assert urlsplit(url).hostname in services, f"Alertmanager posts to unknown {url}"
    datasources = ROOT / "deploy/grafana/provisioning/datasources"
    for path in sorted(datasources.glob("*.y*ml")):
        for ds in yaml.safe_load(path.read_text()).get("datasources", []):
            if ds.get("type") == "prometheus":
                host = urlsplit(ds["url"]).hostname
                assert host in services, f"{path.name}: Grafana reads from unknown {host}"


def test_grafana_dashboards_are_mounted_where_provisioning_looks(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = dict(_volume_parts(v)[::-1] for v in services["grafana"].get("volumes") or [])
    providers = ROOT / "deploy/grafana/provisioning/dashboards"
    paths = [
        p["options"]["path"]
        for f in sorted(providers.glob("*.y*ml"))
        for p in yaml.safe_load(f.read_text()).get("providers", [])
    ]
    assert paths
    for path in paths:
        assert path in mounts, f"dashboards expected at {path}, not mounted"
        assert list((ROOT / mounts[path]).glob("*.json")), f"no dashboard in {mounts[path]}"


# -- Dockerfile ----------------------------------------------------------------

def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_base_is_pinned_and_sources_exist() -> None:
    instructions = _dockerfile_instructions()
    bases = [rest.split()[0] for word, rest in instructions if word == "FROM"]
    assert bases and all(":" in b and not b.endswith(":latest") for b in bases), bases
    copied = 0
    for word, rest in instructions:
        if word in ("COPY", "ADD") and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            for src in sources:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
                copied += 1
    assert copied >= 3
    run = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "pip install ." in run
    (cmd,) = [rest for word, rest in instructions if word == "CMD"]
    assert cmd.startswith('["dialguard", "worker"')
    assert any(word == "USER" for word, _ in instructions), "runs as an unprivileged user"


def test_compose_builds_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in _workers(services).items():
        build = svc.get("build")
        assert build, f"{name} is built from the repository"
        if isinstance(build, str):
            context, dockerfile = build, "Dockerfile"
        else:
            context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
        assert (ROOT / context / dockerfile).is_file()


def test_worker_config_file_is_valid(services: dict[str, dict[str, Any]]) -> None:
    from detectors.config import load_settings

    for svc in _workers(services).values():
        config = _flag(svc["command"], "--config")
        if not config:
            continue
        host = {dst: src for src, dst in map(_volume_parts, svc.get("volumes") or [])}[config]
        load_settings(ROOT / host)  # raises ConfigError on an unknown key or bad value


def test_worker_state_lives_in_a_named_volume(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in _workers(services).items():
        data_dir = _flag(svc["command"], "--data-dir") or "/var/lib/dialguard/dialguard-data"
        volumes = [_volume_parts(v) for v in svc.get("volumes") or []]
        assert any(
            src and not _is_host_path(src) and (data_dir + "/").startswith(dst.rstrip("/") + "/")
            for src, dst in volumes
        ), f"{name} keeps {data_dir} outside a named volume: lost on every restart"
    sources = [
        _volume_parts(v)[0] for svc in _workers(services).values() for v in svc.get("volumes") or []
        if not _is_host_path(_volume_parts(v)[0])
    ]
    assert len(sources) == len(set(sources)), "two workers must not share one state volume"
