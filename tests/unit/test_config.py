"""Configuration: frozen, strict, TOML + environment + overrides, secrets kept secret."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from driftline.config import (CheckpointConfig, DeploymentConfig, JoinConfig, KafkaConfig, load_config)
from driftline.exceptions import ConfigError

TOML = """
name = "elec"
topic_prefix = "acme"
partitions = 3

[kafka]
bootstrap_servers = "file:9092"
security_protocol = "SASL_SSL"
extra = { "client.id" = "driftline-test" }

[model]
preset = "hoeffding_tree"
params = { grace_period = 50 }
features = { x = "num", day = "cat" }

[drift]
policy = "reset"
detectors = [{ name = "binary.DDM" }, { name = "ADWIN", params = { delta = 0.01 } }]

[join]
max_age_ms = 5000
"""


@pytest.fixture
def toml_file(tmp_path):
    path = tmp_path / "deploy.toml"
    path.write_text(TOML)
    return path


def test_defaults_and_topic_names():
    cfg = DeploymentConfig(name="elec")
    topics = cfg.topics.all()
    assert {"features", "labels", "predictions", "drift", "versions", "dlq"} <= set(topics)
    assert all(name == f"driftline.elec.{kind}" == getattr(cfg.topics, kind) for kind, name in topics.items())
    assert cfg.group_id == cfg.transactional_id == "driftline.elec.processor"
    assert cfg.drift.detectors is None  # the benchmarked default for the task (core/detectors.py)


def test_frozen():
    cfg = DeploymentConfig(name="elec")
    with pytest.raises(ValidationError):
        cfg.name = "other"
    with pytest.raises(ValidationError):
        cfg.kafka.bootstrap_servers = "evil:9092"
    assert cfg.name == "elec" and cfg.kafka.bootstrap_servers == "127.0.0.1:9092"


@pytest.mark.parametrize("overrides", [
    {"name": "m", "nope": 1},
    {"name": "m", "kafka": {"bootstrap": "x"}},
    {"name": "m", "model": {"preset": "x", "typo_param": 1}},
    {"name": "bad name"},
    {"name": "m", "topic_prefix": "a/b"},
    {"name": "m", "join": {"max_age_ms": 0}},
    {"name": "m", "drift": {"policy": "sometimes"}},
    {"name": "m", "model": {"features": {"x": "text"}}},
    {},
])
def test_invalid_configs_are_config_errors(overrides):
    with pytest.raises(ConfigError):
        load_config(**overrides)


def test_toml_loading(toml_file):
    cfg = load_config(toml_file)
    assert (cfg.name, cfg.topic_prefix, cfg.partitions) == ("elec", "acme", 3)
    assert cfg.topics.labels == "acme.elec.labels"
    assert cfg.kafka.as_librdkafka_dict() == {"bootstrap.servers": "file:9092", "security.protocol": "SASL_SSL",
                                              "client.id": "driftline-test"}
    assert cfg.model.preset == "hoeffding_tree" and cfg.model.params == {"grace_period": 50}
    assert cfg.model.features == {"x": "num", "day": "cat"}
    assert [(d.name, d.params) for d in cfg.drift.detectors] == [("binary.DDM", {}), ("ADWIN", {"delta": 0.01})]
    assert cfg.drift.policy == "reset" and cfg.join == JoinConfig(max_age_ms=5000)


def test_unreadable_config_files(tmp_path):
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = ")
    with pytest.raises(ConfigError):
        load_config(broken)


def test_precedence_file_then_environment_then_overrides(toml_file, monkeypatch):
    monkeypatch.setenv("DRIFTLINE_BOOTSTRAP_SERVERS", "env:9092")
    assert load_config(toml_file).kafka.bootstrap_servers == "env:9092"
    assert load_config(toml_file, kafka={"bootstrap_servers": "cli:9092"}).kafka.bootstrap_servers == "cli:9092"
    # a partial nested override keeps the rest of the section
    assert load_config(toml_file, kafka={"sasl_username": "u"}).kafka.security_protocol == "SASL_SSL"
    assert load_config(toml_file, name=None).name == "elec"  # None means "not given"


def test_sasl_password_from_the_environment_stays_secret(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_SASL_PASSWORD", "hunter2-secret")
    cfg = load_config(name="m")
    assert isinstance(cfg.kafka.sasl_password, SecretStr)
    assert cfg.kafka.sasl_password.get_secret_value() == "hunter2-secret"
    for text in (repr(cfg), str(cfg), repr(cfg.kafka), cfg.model_dump_json(), str(cfg.model_dump())):
        assert "hunter2-secret" not in text
    assert cfg.kafka.as_librdkafka_dict()["sasl.password"] == "hunter2-secret"


def test_librdkafka_dict_is_fresh_each_call():
    kafka = KafkaConfig(sasl_username="u", extra={"linger.ms": "5"})
    first = kafka.as_librdkafka_dict()
    first["bootstrap.servers"] = "evil:1"
    first["linger.ms"] = "999"
    first["added"] = "x"
    second = kafka.as_librdkafka_dict()
    assert second is not first
    assert second == {"bootstrap.servers": "127.0.0.1:9092", "sasl.username": "u", "linger.ms": "5"}
    assert kafka.extra == {"linger.ms": "5"}


def test_signing_key_comes_from_the_environment(monkeypatch):
    ckpt = CheckpointConfig()
    with pytest.raises(ConfigError, match="DRIFTLINE_SNAPSHOT_KEY"):
        ckpt.signing_key()
    monkeypatch.setenv("DRIFTLINE_SNAPSHOT_KEY", "")
    with pytest.raises(ConfigError):
        ckpt.signing_key()
    monkeypatch.setenv("DRIFTLINE_SNAPSHOT_KEY", "s3cr3t-0123456789")
    assert ckpt.signing_key() == b"s3cr3t-0123456789"
    monkeypatch.setenv("OTHER_KEY", "k2-0123456789abcdef")
    assert CheckpointConfig(key_env="OTHER_KEY").signing_key() == b"k2-0123456789abcdef"


def test_a_short_signing_key_is_refused_in_one_line(monkeypatch):
    # A 1-byte key would make the log redaction turn every "k" into ***.
    monkeypatch.setenv("DRIFTLINE_SNAPSHOT_KEY", "k")
    with pytest.raises(ConfigError, match=r"^snapshot signing key in DRIFTLINE_SNAPSHOT_KEY is 1 bytes: use at least 16") as err:
        CheckpointConfig().signing_key()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("model", [{"preset": "river.tree:HoeffdingTreeClassifier"},
                                   {"factory": "river.tree:HoeffdingTreeClassifier"}])
def test_preset_or_factory_takes_a_module_factory_path(model):
    from driftline.core.models import build_model

    config = load_config(name="m", model=model)
    assert config.model.factory == "river.tree:HoeffdingTreeClassifier"
    assert type(build_model(config.model)).__name__ == "HoeffdingTreeClassifier"


def test_a_preset_path_and_a_different_factory_are_refused():
    with pytest.raises(ConfigError, match="give one of them"):
        load_config(name="m", model={"preset": "river.tree:HoeffdingTreeClassifier", "factory": "river.linear_model:LinearRegression"})


def test_scale_defaults_to_single_mode():
    scale = DeploymentConfig(name="m").scale
    assert (scale.mode, scale.instance, scale.max_keys_in_memory, scale.top_keys, scale.session_timeout_ms) == (
        "single", None, 10_000, 10, 10_000)


def test_keyed_scale_from_toml(tmp_path):
    path = tmp_path / "keyed.toml"
    path.write_text('name = "m"\n[scale]\nmode = "keyed"\ninstance = "worker-1"\nmax_keys_in_memory = 500\ntop_keys = 3\n')
    scale = load_config(path).scale
    assert (scale.mode, scale.instance, scale.max_keys_in_memory, scale.top_keys) == ("keyed", "worker-1", 500, 3)


def test_global_scale_from_toml(tmp_path):
    path = tmp_path / "global.toml"
    path.write_text('name = "m"\n[scale]\nmode = "global"\nrole = "predictor"\ninstance = "p0"\n'
                    'publish_every_examples = 200\nmax_staleness_ms = 50\nstaleness = "latest"\n')
    config = load_config(path)
    scale = config.scale
    assert (scale.mode, scale.role, scale.publish_every_examples, scale.max_staleness_ms, scale.staleness) == (
        "global", "predictor", 200, 50, "latest")
    assert config.transactional_id == "driftline.m.processor.predictor.p0"
    trainer = load_config(name="m", scale={"mode": "global", "role": "trainer"})
    assert trainer.transactional_id == "driftline.m.processor.trainer"
    assert trainer.predictor_group_id != trainer.group_id


def test_served_quality_is_off_unless_asked_for(tmp_path):
    assert load_config(name="m", scale={"mode": "global"}).scale.served_labels is False
    path = tmp_path / "served.toml"
    path.write_text('name = "m"\n[scale]\nmode = "global"\nserved_labels = true\nserved_buffer = 500\n')
    scale = load_config(path).scale
    assert (scale.served_labels, scale.served_buffer) == (True, 500)


@pytest.mark.parametrize(("scale", "message"), [
    ({"mode": "global", "role": "server"}, "role"),
    ({"mode": "global", "staleness": "fresh"}, "staleness"),
    ({"mode": "global", "publish_every_examples": 0}, "publish_every_examples"),
    ({"mode": "global", "max_staleness_ms": -1}, "max_staleness_ms"),
    ({"mode": "global", "inline_version_bytes": 2_000_000}, "inline_version_bytes"),
    ({"mode": "global", "served_buffer": 0}, "served_buffer"),
    ({"mode": "sharded"}, "mode"),
    ({"instance": "a b"}, "scale.instance"),
    ({"instance": ""}, "scale.instance"),
    ({"max_keys_in_memory": 0}, "max_keys_in_memory"),
    ({"top_keys": -1}, "top_keys"),
    ({"keys": 5}, "keys"),
])
def test_invalid_scale_settings_are_config_errors(scale, message):
    with pytest.raises(ConfigError, match=message):
        load_config(name="m", scale=scale)
