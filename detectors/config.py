"""Settings: one frozen, validated object built once at start from TOML.

The defaults live in ``detectors/defaults.toml``; an operator's file overrides
any subset of keys.  Unknown keys, wrong types and impossible values are
refused with a message naming the key, so a typo never silently keeps a
default.  Live tuning (the control topic) goes through :func:`with_override`,
which re-validates and returns a new object; keys that shape state layout are
fixed at start and refused there.

>>> s = load_settings()
>>> s.rules["cloud_dialer"].horizon_s in s.features.horizons_s
True
>>> with_override(s, "rules.cloud_dialer.min_attempts", 80).rules["cloud_dialer"].min["attempts"]
80.0
>>> with_override(s, "features.horizons_s", [60])
Traceback (most recent call last):
...
detectors.config.ConfigError: features.horizons_s is fixed at start; restart to change it
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detectors.catalogue import NAMES

#: Features a rule can name; defined in :mod:`detectors.catalogue`.
FEATURES: tuple[str, ...] = NAMES

#: Keys whose change would alter the layout of per-number state.
FIXED_AT_START: frozenset[str] = frozenset(
    {"features.horizons_s", "features.recent_callees", "model.n_trees", "model.height",
     "model.window_size", "model.seed", "input.region", "input.timezone", "input.format",
     "input.freeswitch_template", "input.csv_columns", "input.csv_time_format",
     "input.min_year", "input.max_year", "input.max_call_s", "rings.enabled",
     "rings.callee_blocks", "rings.population_shards", "reach.half_life_s",
     "circles.enabled", "circles.bits", "circles.generation_s"}
)


class ConfigError(ValueError):
    """A settings file or override that cannot be used; the message names the key."""


#: CONTRACT 1a fields a header-CSV column map may name (``input.csv_columns``)
CSV_FIELDS: tuple[str, ...] = ("caller", "callee", "start", "duration", "answered", "ring", "id",
                               "trunk", "src_ip", "disposition")
#: formats a ``cdr.raw`` message may carry (``input.format``); see ``formats.registry``
MESSAGE_FORMATS: tuple[str, ...] = ("json", "asterisk", "freeswitch", "csv")


@dataclass(frozen=True)
class InputSettings:
    region: str = "CN"
    timezone: str = "UTC"
    dedup_window_s: float = 3600.0
    max_clock_jump_s: float = 86400.0
    format: str = "json"
    freeswitch_template: str = ""
    csv_columns: Mapping[str, str] = field(
        default_factory=lambda: {name: name for name in CSV_FIELDS})
    csv_time_format: str = ""
    min_year: int = 1990
    max_year: int = 2099
    max_call_s: float = 86400.0


@dataclass(frozen=True)
class FeatureSettings:
    horizons_s: tuple[int, ...] = (600, 3600, 21600)
    short_call_s: float = 10.0
    refusal_talk_s: float = 5.0
    contact_talk_s: float = 90.0
    ring_once_s: float = 5.0
    sequential_gap: int = 20
    idle_expiry_s: float = 7200.0
    promote_after: int = 4
    recent_callees: int = 32
    virtual_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertSettings:
    cooldown_s: float = 3600.0
    min_attempts: int = 15
    confidence_z: float = 0.5
    settle_s: float = 900.0
    settle_answer_ratio: float = 0.25
    settle_max_share: float = 0.75


@dataclass(frozen=True)
class ModelSettings:
    enabled: bool = True
    n_trees: int = 25
    height: int = 8
    window_size: int = 250
    seed: int = 42
    score_every: int = 10
    weight: float = 1.0
    alert_threshold: float = 0.0


@dataclass(frozen=True)
class RingSettings:
    """Group detection (:mod:`detectors.rings`); every key is live except ``enabled``,
    ``callee_blocks`` and ``population_shards`` (they decide the grouping keys)."""

    enabled: bool = True
    callee_blocks: bool = True
    population_shards: int = 8
    member_idle_s: float = 3600.0
    ring_idle_s: float = 3600.0
    update_interval_s: float = 300.0
    min_members: int = 3
    quiet_min_members: int = 2
    min_strength: int = 3
    quorum_strength: int = 2
    quorum_members: int = 5
    join_strength: int = 1
    own_key_share: float = 0.75
    max_strength: int = 24
    short_talk_s: float = 10.0
    engaged_talk_s: float = 30.0
    max_engaged_ratio: float = 0.2
    max_answer_ratio: float = 0.4
    answer_grace_calls: float = 2.0
    confidence_z: float = 0.5
    youth_s: float = 3600.0
    burst_s: float = 0.0
    engaged_memory_s: float = 86400.0
    max_false_share: float = 0.02
    prior_tail: float = 0.3
    burst_prior_tail: float = 0.1
    prior_weight: float = 20.0
    baseline_half_life_s: float = 21600.0
    max_members: int = 5000
    weight: float = 2.0


@dataclass(frozen=True)
class ReachSettings:
    """The reach judgement (:mod:`detectors.reach`); see ``[reach]`` in defaults.toml."""

    enabled: bool = True
    horizon_s: int = 21600
    settle_s: int = 3600
    min_strangers: float = 12.0
    max_returns: float = 0.0
    max_contact_ratio: float = 0.1
    max_stranger_repeat_ratio: float = 0.1
    max_missed_retry_ratio: float = 0.2
    max_mean_talk_s: float = 90.0
    reference_quantile: float = 0.5
    min_expected_returns: float = 6.0
    min_samples: int = 200
    half_life_s: float = 43200.0
    weight: float = 1.5


@dataclass(frozen=True)
class CircleSettings:
    """The call-graph sketch (:mod:`detectors.circles`); see ``[circles]`` in defaults.toml."""

    enabled: bool = False
    bits: int = 26
    generation_s: float = 43200.0


@dataclass(frozen=True)
class RuleProfile:
    """One explainable profile: fires when every min/max condition holds."""

    name: str
    description: str
    horizon_s: int
    weight: float
    enabled: bool = True
    min: Mapping[str, float] = field(default_factory=dict)
    max: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    input: InputSettings
    features: FeatureSettings
    alerts: AlertSettings
    model: ModelSettings
    rules: Mapping[str, RuleProfile]
    rings: RingSettings = field(default_factory=RingSettings)
    reach: ReachSettings = ReachSettings()
    circles: CircleSettings = CircleSettings()
    #: the merged raw mapping these settings were built from (for overrides and display)
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)


def default_mapping() -> dict[str, Any]:
    text = resources.files("detectors").joinpath("defaults.toml").read_text("utf-8")
    return tomllib.loads(text)


def load_settings(path: str | Path | None = None) -> Settings:
    """Defaults, overridden by the TOML file at ``path`` if given."""
    merged = default_mapping()
    if path is not None:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
        try:
            user = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        _merge(merged, user, "")
    return build_settings(merged)


def _merge(base: dict[str, Any], user: Mapping[str, Any], prefix: str) -> None:
    for key, value in user.items():
        dotted = f"{prefix}{key}"
        if prefix == "rules." and key not in base:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{dotted}: a rule profile must be a table")
            base[key] = dict(value)  # a new profile of the analyst's own
            continue
        if key not in base:
            if prefix.startswith("rules."):
                base[key] = value  # a profile key; build_settings says if it is no feature
                continue
            raise ConfigError(f"unknown setting {dotted}")
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{dotted} must be a table")
            _merge(base[key], value, dotted + ".")
        else:
            base[key] = value


def _number(value: Any, key: str, *, minimum: float | None = 0.0, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if integer and (not float(value).is_integer()):
        raise ConfigError(f"{key} must be a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value!r}")
    return int(value) if integer else float(value)


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def _exact_keys(section: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    for key in section:
        if key not in allowed:
            raise ConfigError(f"unknown setting {prefix}.{key}")


def _input_format_settings(i: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[input]`` keys that say how CDRs are written and what values are possible."""
    fmt = i["format"]
    if fmt not in MESSAGE_FORMATS:
        raise ConfigError(f"input.format must be one of {', '.join(MESSAGE_FORMATS)}, "
                          f"got {fmt!r}")
    for key in ("freeswitch_template", "csv_time_format"):
        if not isinstance(i[key], str):
            raise ConfigError(f"input.{key} must be text, got {i[key]!r}")
    template = i["freeswitch_template"]
    if template and not all(v in template for v in (
            "${caller_id_number}", "${destination_number}", "${start_stamp}", "${billsec}")):
        raise ConfigError("input.freeswitch_template must hold ${caller_id_number}, "
                          "${destination_number}, ${start_stamp} and ${billsec}")
    columns = i["csv_columns"]
    if not isinstance(columns, Mapping) or not all(isinstance(v, str) for v in columns.values()):
        raise ConfigError("input.csv_columns must be a table of field = \"column name\"")
    unknown = set(columns) - set(CSV_FIELDS)
    missing = [f for f in CSV_FIELDS[:4] if not columns.get(f)]
    if unknown or missing:
        raise ConfigError(f"input.csv_columns: fields are {', '.join(CSV_FIELDS)}; "
                          f"unknown {sorted(unknown)}, missing {missing}")
    years = []
    for key in ("min_year", "max_year"):
        value = i[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1970 <= value <= 9998:
            raise ConfigError(f"input.{key} must be a year 1970..9998, got {value!r}")
        years.append(value)
    if years[0] > years[1]:
        raise ConfigError(f"input.min_year {years[0]} is after input.max_year {years[1]}")
    return {
        "format": fmt,
        "freeswitch_template": template,
        "csv_columns": {k: v for k, v in columns.items() if v},
        "csv_time_format": i["csv_time_format"],
        "min_year": years[0],
        "max_year": years[1],
        "max_call_s": _number(i["max_call_s"], "input.max_call_s", minimum=1.0),
    }


_SECTIONS = ("input", "features", "alerts", "model", "rules", "rings", "reach", "circles")


def build_settings(raw: Mapping[str, Any]) -> Settings:
    """Validate a merged mapping and freeze it."""
    for section in _SECTIONS:
        if not isinstance(raw.get(section), Mapping):
            raise ConfigError(f"missing table [{section}]")
    unknown = set(raw) - set(_SECTIONS)
    if unknown:
        raise ConfigError(f"unknown setting {sorted(unknown)[0]}")

    i = raw["input"]
    _exact_keys(i, {f.name for f in InputSettings.__dataclass_fields__.values()}, "input")
    region = i["region"]
    if not isinstance(region, str) or len(region) != 2:
        raise ConfigError(f"input.region must be a two-letter region code, got {region!r}")
    try:
        ZoneInfo(str(i["timezone"]))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"input.timezone: unknown time zone {i['timezone']!r}") from exc
    input_settings = InputSettings(
        region=region.upper(),
        timezone=str(i["timezone"]),
        dedup_window_s=_number(i["dedup_window_s"], "input.dedup_window_s"),
        max_clock_jump_s=_number(i["max_clock_jump_s"], "input.max_clock_jump_s", minimum=1.0),
        **_input_format_settings(i),
    )

    f = raw["features"]
    _exact_keys(f, {f.name for f in FeatureSettings.__dataclass_fields__.values()}, "features")
    horizons = f["horizons_s"]
    if (
        not isinstance(horizons, list | tuple)
        or not horizons
        or len(horizons) > 6
        or any(isinstance(h, bool) or not isinstance(h, int) or h <= 0 for h in horizons)
        or len(set(horizons)) != len(horizons)
    ):
        raise ConfigError(
            f"features.horizons_s must be 1 to 6 distinct positive whole seconds, got {horizons!r}"
        )
    prefixes = f["virtual_prefixes"]
    if not isinstance(prefixes, list | tuple) or not all(
        isinstance(p, str) and p.startswith("+") and p[1:].isdigit() for p in prefixes
    ):
        raise ConfigError(
            "features.virtual_prefixes must be a list of E.164 prefixes like '+86170'"
        )
    feature_settings = FeatureSettings(
        horizons_s=tuple(sorted(horizons)),
        short_call_s=_number(f["short_call_s"], "features.short_call_s"),
        refusal_talk_s=_number(f["refusal_talk_s"], "features.refusal_talk_s"),
        contact_talk_s=_number(f["contact_talk_s"], "features.contact_talk_s", minimum=1.0),
        ring_once_s=_number(f["ring_once_s"], "features.ring_once_s"),
        sequential_gap=_number(f["sequential_gap"], "features.sequential_gap", integer=True),
        idle_expiry_s=_number(f["idle_expiry_s"], "features.idle_expiry_s", minimum=1.0),
        promote_after=_number(f["promote_after"], "features.promote_after", minimum=1,
                              integer=True),
        recent_callees=_number(f["recent_callees"], "features.recent_callees", minimum=1,
                               integer=True),
        virtual_prefixes=tuple(prefixes),
    )
    if feature_settings.recent_callees > 256:
        raise ConfigError("features.recent_callees must be <= 256 (state per number is bounded)")

    a = raw["alerts"]
    _exact_keys(a, {"cooldown_s", "min_attempts", "confidence_z", "settle_s",
                    "settle_answer_ratio", "settle_max_share"}, "alerts")
    alert_settings = AlertSettings(
        cooldown_s=_number(a["cooldown_s"], "alerts.cooldown_s"),
        min_attempts=_number(a["min_attempts"], "alerts.min_attempts", minimum=1, integer=True),
        confidence_z=_number(a["confidence_z"], "alerts.confidence_z"),
        settle_s=_number(a["settle_s"], "alerts.settle_s"),
        settle_answer_ratio=_number(a["settle_answer_ratio"], "alerts.settle_answer_ratio"),
        settle_max_share=_number(a["settle_max_share"], "alerts.settle_max_share"),
    )
    if alert_settings.confidence_z > 4:
        raise ConfigError("alerts.confidence_z must be between 0 (raw ratios) and 4")
    if alert_settings.settle_answer_ratio > 1:
        raise ConfigError("alerts.settle_answer_ratio must be between 0 and 1 (1: never wait)")
    if alert_settings.settle_max_share > 1:
        raise ConfigError("alerts.settle_max_share must be between 0 and 1 (a share of a "
                          "rule's horizon)")

    m = raw["model"]
    _exact_keys(m, {f.name for f in ModelSettings.__dataclass_fields__.values()}, "model")
    model_settings = ModelSettings(
        enabled=_bool(m["enabled"], "model.enabled"),
        n_trees=_number(m["n_trees"], "model.n_trees", minimum=1, integer=True),
        height=_number(m["height"], "model.height", minimum=1, integer=True),
        window_size=_number(m["window_size"], "model.window_size", minimum=1, integer=True),
        seed=_number(m["seed"], "model.seed", integer=True),
        score_every=_number(m["score_every"], "model.score_every", minimum=1, integer=True),
        weight=_number(m["weight"], "model.weight"),
        alert_threshold=_number(m["alert_threshold"], "model.alert_threshold"),
    )
    if model_settings.alert_threshold > 1:
        raise ConfigError("model.alert_threshold must be between 0 (off) and 1")

    rules: dict[str, RuleProfile] = {}
    for name, body in raw["rules"].items():
        rules[name] = _build_rule(name, body, feature_settings.horizons_s)
    return Settings(
        input=input_settings,
        features=feature_settings,
        alerts=alert_settings,
        model=model_settings,
        rules=rules,
        rings=_build_rings(raw["rings"]),
        reach=_build_reach(raw["reach"], feature_settings.horizons_s),
        circles=_build_circles(raw["circles"]),
        raw=copy.deepcopy(dict(raw)),
    )


_RING_WHOLE = {"min_members", "quiet_min_members", "min_strength", "quorum_strength",
               "quorum_members", "join_strength", "max_strength", "max_members"}
_RING_FLAGS = {"enabled", "callee_blocks"}


def _build_rings(r: Mapping[str, Any]) -> RingSettings:
    fields = RingSettings.__dataclass_fields__
    _exact_keys(r, set(fields), "rings")
    values: dict[str, Any] = {}
    for name in fields:
        key = f"rings.{name}"
        if name in _RING_FLAGS:
            values[name] = _bool(r[name], key)
        elif name == "population_shards":
            values[name] = _number(r[name], key, minimum=0, integer=True)
        else:
            values[name] = _number(r[name], key, minimum=1 if name in _RING_WHOLE else 0.0,
                                   integer=name in _RING_WHOLE)
    rings = RingSettings(**values)
    if rings.population_shards > 4096:
        raise ConfigError("rings.population_shards must be at most 4096")
    if rings.max_strength < rings.min_strength or rings.max_strength > 64:
        raise ConfigError("rings.max_strength must be between rings.min_strength and 64")
    if rings.join_strength > rings.min_strength:
        raise ConfigError("rings.join_strength must be at most rings.min_strength")
    if rings.quorum_strength > rings.min_strength:
        raise ConfigError("rings.quorum_strength must be at most rings.min_strength")
    if rings.min_members < 2:
        raise ConfigError("rings.min_members must be >= 2 (a ring is several numbers)")
    if not 2 <= rings.quiet_min_members <= rings.min_members:
        raise ConfigError("rings.quiet_min_members must be between 2 and rings.min_members")
    if not 0 < rings.own_key_share <= 1:
        raise ConfigError("rings.own_key_share must be above 0 and at most 1")
    for name in ("prior_tail", "burst_prior_tail"):
        if not 0 < getattr(rings, name) < 1:
            raise ConfigError(f"rings.{name} must be between 0 and 1 (exclusive)")
    if not 0 <= rings.burst_s <= rings.youth_s:
        raise ConfigError("rings.burst_s must be between 0 (off) and rings.youth_s")
    for name in ("max_engaged_ratio", "max_answer_ratio", "max_false_share"):
        if getattr(rings, name) > 1:
            raise ConfigError(f"rings.{name} must be between 0 and 1")
    for name in ("member_idle_s", "ring_idle_s", "baseline_half_life_s", "youth_s"):
        if getattr(rings, name) <= 0:
            raise ConfigError(f"rings.{name} must be > 0")
    return rings


def _typed_section(section: Mapping[str, Any], cls: type, name: str) -> dict[str, Any]:
    """The keys of a flat section, each checked against the type of its dataclass default."""
    fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
    _exact_keys(section, set(fields), name)
    values: dict[str, Any] = {}
    for key, spec in fields.items():
        if key not in section:
            raise ConfigError(f"missing setting {name}.{key}")
        value, dotted = section[key], f"{name}.{key}"
        if isinstance(spec.default, bool):
            values[key] = _bool(value, dotted)
        else:
            values[key] = _number(value, dotted, integer=isinstance(spec.default, int))
    return values


def _build_reach(section: Mapping[str, Any], horizons: tuple[int, ...]) -> ReachSettings:
    reach = ReachSettings(**_typed_section(section, ReachSettings, "reach"))
    if reach.horizon_s not in horizons:
        raise ConfigError(f"reach.horizon_s must be one of features.horizons_s {list(horizons)}, "
                          f"got {reach.horizon_s!r}")
    if reach.settle_s not in horizons or reach.settle_s >= reach.horizon_s:
        raise ConfigError(f"reach.settle_s must be one of features.horizons_s {list(horizons)} "
                          f"below reach.horizon_s, got {reach.settle_s!r}")
    if not 0 < reach.reference_quantile < 1:
        raise ConfigError("reach.reference_quantile must be between 0 and 1")
    if max(reach.max_contact_ratio, reach.max_stranger_repeat_ratio,
           reach.max_missed_retry_ratio) > 1:
        raise ConfigError("reach.max_contact_ratio, reach.max_stranger_repeat_ratio and "
                          "reach.max_missed_retry_ratio must be between 0 and 1")
    if (reach.min_expected_returns <= 0 or reach.half_life_s <= 0
            or reach.max_mean_talk_s <= 0):
        raise ConfigError("reach.min_expected_returns, reach.half_life_s and "
                          "reach.max_mean_talk_s must be above 0")
    return reach


def _build_circles(section: Mapping[str, Any]) -> CircleSettings:
    circles = CircleSettings(**_typed_section(section, CircleSettings, "circles"))
    if not 8 <= circles.bits <= 30:
        raise ConfigError("circles.bits must be between 8 and 30 (2**bits / 4 bytes of memory)")
    if circles.generation_s < 60:
        raise ConfigError("circles.generation_s must be at least 60 seconds")
    return circles


def _build_rule(name: str, body: Any, horizons: tuple[int, ...]) -> RuleProfile:
    key = f"rules.{name}"
    if not isinstance(body, Mapping):
        raise ConfigError(f"{key} must be a table")
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise ConfigError(f"{key}: profile names are letters, digits and underscores")
    mins: dict[str, float] = {}
    maxs: dict[str, float] = {}
    horizon = body.get("horizon_s")
    if horizon not in horizons:
        raise ConfigError(f"{key}.horizon_s must be one of features.horizons_s {list(horizons)}, "
                          f"got {horizon!r}")
    for k, v in body.items():
        if k in ("horizon_s", "weight", "description", "enabled"):
            continue
        bound, _, feature = k.partition("_")
        if bound not in ("min", "max") or feature not in FEATURES:
            raise ConfigError(
                f"unknown setting {key}.{k}: rule keys are min_<feature> or max_<feature>, "
                f"features: {', '.join(FEATURES)}"
            )
        (mins if bound == "min" else maxs)[feature] = _number(v, f"{key}.{k}", minimum=None)
    if not mins and not maxs:
        raise ConfigError(f"{key} has no conditions")
    if "attempts" not in mins:
        raise ConfigError(f"{key} needs min_attempts (a volume floor keeps quiet numbers quiet)")
    description = body.get("description", name)
    if not isinstance(description, str):
        raise ConfigError(f"{key}.description must be text")
    return RuleProfile(
        name=name,
        description=description,
        horizon_s=int(horizon),
        weight=_number(body.get("weight", 1.0), f"{key}.weight"),
        enabled=_bool(body.get("enabled", True), f"{key}.enabled"),
        min=mins,
        max=maxs,
    )


def with_override(settings: Settings, dotted_key: str, value: Any) -> Settings:
    """A new Settings with one key changed (live tuning); raises ConfigError if invalid."""
    if dotted_key in FIXED_AT_START:
        raise ConfigError(f"{dotted_key} is fixed at start; restart to change it")
    raw = copy.deepcopy(dict(settings.raw))
    parts = dotted_key.split(".")
    node: Any = raw
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node:
            if node is raw.get("rules") and isinstance(node, dict):
                node[part] = {}  # allow creating a new profile key by key
            else:
                raise ConfigError(f"unknown setting {dotted_key}")
        node = node[part]
    if not isinstance(node, dict):
        raise ConfigError(f"unknown setting {dotted_key}")
    is_rule_key = len(parts) == 3 and parts[0] == "rules"
    if parts[-1] not in node and not is_rule_key:
        raise ConfigError(f"unknown setting {dotted_key}")
    if isinstance(node.get(parts[-1]), dict):
        raise ConfigError(f"{dotted_key} is a table; set one of its keys")
    node[parts[-1]] = value
    return build_settings(raw)
