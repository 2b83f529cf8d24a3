import tomllib
from pathlib import Path

import pytest

from detectors.config import ConfigError, load_settings, with_override


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dialguard.toml"
    path.write_text(text)
    return path


def test_defaults_are_valid_and_complete() -> None:
    s = load_settings()
    assert s.features.horizons_s == tuple(sorted(s.features.horizons_s))
    assert {"cloud_dialer", "ring_once", "marketing_blast", "repeat_refused"} <= set(s.rules)
    for profile in s.rules.values():
        assert profile.horizon_s in s.features.horizons_s
        assert "attempts" in profile.min


def test_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "[alerts]\ncooldown_s = 60\n"
                                      "[rules.cloud_dialer]\nmin_attempts = 99\n"))
    assert s.alerts.cooldown_s == 60.0
    assert s.rules["cloud_dialer"].min["attempts"] == 99.0
    assert s.rules["cloud_dialer"].max["answer_ratio"] == load_settings().rules[
        "cloud_dialer"].max["answer_ratio"]


def test_analyst_can_add_a_profile(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[rules.night_scan]\nhorizon_s = 600\nmin_attempts = 30\n'
                                      'min_sequential_ratio = 0.5\ndescription = "scanning"\n'))
    assert s.rules["night_scan"].min == {"attempts": 30.0, "sequential_ratio": 0.5}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[alerts]\ncooldown = 5\n", "unknown setting alerts.cooldown"),
        ("[alert]\ncooldown_s = 5\n", "unknown setting alert"),
        ("[alerts]\ncooldown_s = -5\n", "alerts.cooldown_s must be >= 0"),
        ("[alerts]\ncooldown_s = 'soon'\n", "alerts.cooldown_s must be a number"),
        ("[alerts]\nmin_attempts = 2.5\n", "alerts.min_attempts must be a whole number"),
        ("[alerts]\ncooldown_s = nan\n", "alerts.cooldown_s must be a finite number"),
        ("[rings]\nyouth_s = inf\n", "rings.youth_s must be a finite number"),
        ("[alerts]\nsettle_s = -1\n", "alerts.settle_s must be >= 0"),
        ("[alerts]\nsettle_answer_ratio = 1.5\n", "alerts.settle_answer_ratio must be between"),
        ("[alerts]\nsettle_max_share = 2\n", "alerts.settle_max_share must be between"),
        ("[input]\ntimezone = 'Mars/Base'\n", "unknown time zone"),
        ("[input]\nregion = 'China'\n", "input.region"),
        ("[features]\nhorizons_s = []\n", "features.horizons_s"),
        ("[features]\nhorizons_s = [60, 60]\n", "features.horizons_s"),
        ("[rules.cloud_dialer]\nhorizon_s = 61\n", "horizon_s must be one of"),
        ("[rules.cloud_dialer]\nmin_answer_rate = 0.1\n", "rule keys are min_<feature>"),
        ("[rules.x]\nhorizon_s = 600\nmax_answer_ratio = 0.1\n", "needs min_attempts"),
        ("[model]\nalert_threshold = 2\n", "model.alert_threshold"),
        ("[reach]\nmax_mean_talk_s = 0\n", "reach.max_mean_talk_s must be above 0"),
        ("[reach]\nmax_missed_retry_ratio = 2\n", "reach.max_missed_retry_ratio must be betw"),
        ("[model]\nenabled = 1\n", "model.enabled must be true or false"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_settings(write(tmp_path, text))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(tmp_path / "nope.toml")


def test_override_is_validated_and_returns_a_new_object() -> None:
    s = load_settings()
    t = with_override(s, "alerts.cooldown_s", 10)
    assert t.alerts.cooldown_s == 10.0 and s.alerts.cooldown_s != 10.0
    with pytest.raises(ConfigError, match="unknown setting"):
        with_override(s, "alerts.nope", 1)
    with pytest.raises(ConfigError, match="must be >= 0"):
        with_override(s, "alerts.cooldown_s", -1)
    with pytest.raises(ConfigError, match="fixed at start"):
        with_override(s, "features.recent_callees", 8)
    with pytest.raises(ConfigError, match="is a table"):
        with_override(s, "rules.cloud_dialer", 1)


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(AttributeError):
        s.alerts.cooldown_s = 1  # type: ignore[misc]


def test_deployed_config_is_the_defaults() -> None:
    """deploy/dialguard.toml ships as a copy of the defaults: the workers compose starts
    judge as the evaluated detector does (it had drifted: min_attempts 15, sections
    missing)."""
    path = Path(__file__).resolve().parents[2] / "deploy" / "dialguard.toml"
    defaults = Path(__file__).resolve().parents[2] / "detectors" / "defaults.toml"
    assert tomllib.loads(path.read_text()) == tomllib.loads(defaults.read_text())
    assert load_settings(path) == load_settings()


@pytest.mark.parametrize(("text", "message"), [
    ('[input]\nformat = "xml"\n', "input.format"),
    ("[input]\nmin_year = 2030\nmax_year = 2020\n", "after input.max_year"),
    ("[input]\nmax_year = 10000\n", "input.max_year"),
    ("[input]\nmax_call_s = 0\n", "input.max_call_s"),
    ('[input.csv_columns]\ncaller = ""\n', "missing ['caller']"),
    ('[input.csv_columns]\nimsi = "x"\n', "unknown setting input.csv_columns.imsi"),
])
def test_input_format_settings_are_checked(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(write(tmp_path, text))


def test_a_column_map_overrides_only_what_it_names_and_empty_unmaps(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[input.csv_columns]\ncaller = "a_number"\nid = ""\n'))
    assert s.input.csv_columns["caller"] == "a_number" and "id" not in s.input.csv_columns
    assert s.input.csv_columns["callee"] == "callee"
    with pytest.raises(ConfigError, match="fixed at start"):
        with_override(s, "input.format", "asterisk")
