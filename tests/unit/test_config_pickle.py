"""Snapshots pickle the engine with its DeploymentConfig: the config classes keep the names
driftline.config.<Class> they had when the package was one module (src/driftline/config/__init__.py)."""

from __future__ import annotations

import base64
import io
import pickle
import zlib

import driftline.config
import driftline.config.deployment
from driftline.config import (AlertRule, ChallengerSpec, DeploymentConfig, DetectorSpec, FairnessAttribute,
                              ModelConfig, PerformanceRule)
from driftline.config.base import _Frozen

# pickle.dumps(_snapshot_config(), protocol=pickle.HIGHEST_PROTOCOL) by driftline.config when it was
# one module (commit b08d542), zlib-compressed and base64-encoded.
PICKLED_BEFORE_THE_SPLIT = (
    "eNp1V01sJEcVHscznj+P13aWBeUABxBJVrGz2SUBg4LXa28Ge9YTs16BIrFq1XTXTLWn/1JdbXs2rBQkhGxUgkg0QiAOaG9ccuPAhROHFaeIHLmA"
    "wgEkDonEgQMSfK+6p2e8mbWlmao33a/e+95733v1buXnf1opmT+97Ei3rzw34Ot2GPTdQaqXd3jkhSOfB2o7E/0sffEH6cP0BV2zLMe1lWWZXTlg"
    "Pk91mXvcTvWiCiPXtiLJ++5pquuF4lQ3IiaVq9wwiNPOM7opcYBrMxKknTldGbL+kKWipJsdWj1xqqjQYSu9MFSxkiyyYi6PuYxTvfTK9a+uX8P/"
    "K1/fuLZxPdUrMbcT6aoRzAhVaIde2tVLMYs9y+e2YIEb+5C0jCSBHuPBWBCxOD4JpQPF0chhgXLtdTWKOE6qH3JbcnWo5Ngs3YIdJLOOmZfAyWeD"
    "UK2xNcmZt1Zoinv6UgzVNrO8MPe4qyv8FI6QkhrsdBKbS9rUgdaAy3UfB869msa6hpDEiW9+TfSqZY3NsowChKGrPzsl7bvcc2LYRRH6KZD7ovjc"
    "e/ry1BORdI+Z4vRm0tMVP3S4Z4Dfp9VM4BcQUWgEKCLk/b4DGy0lOTyu9pmtQjmCFQuIMIPd8KKsWDyEqNbnTCV41+TKHFJiPkh8fDpshE+AAZ+q"
    "tgeo8Mz99IXzM66rLBlQ4pFNra1sPdOq8tANEKhK7IcKpswN0868rkhCOG1v/jXP7rKEtWnnsS7HnDtp56quOjx2JdZdPRfhyd//kv5+lYgXu+Iq"
    "QdZ+T7xE2DR8N3CtHlO2wLNNjzMZWLFgkuOtj3P9jVxslJcmSjbEptgSN3JV5aPQDcijxh4WM91p+OzUYgNuAcO90ve+XNFNkkQ8ILzTvZu3LhXq"
    "M6UVU18mdju0mqm27nDFKUYEMB5d3Mn3hxFK9sKzoqorWzvf3e2m4jVEsYJ0UAyu/vDB39rvX34nnjhXFa9ljjGEPUQhI5zVQcKkwykiZmXsatNq"
    "pl2VWIERkCsnTCIlFogQkBX7H1T1wgkCG56k+/+e03XEAFXpwnzEsGkLbg8tjtofpZ3rusK8SMDEb/79P787+0h8ohd8JgdAul3K//QigchPmR95"
    "yLH9s2f1AgtsEcr0TLeylTU+D2cv56LJsWQFZVWWoe3ND2+Yv/bNWnYC14sAio2s2GYe3D9D+kMhvpv0bY0tGueZXsrEE7+uXwzr0kAym0/Z/NKc"
    "XvK5kq4dF6b+Y143CDkrg7FT0pciLt3QmXpv+Xm9CHaSDEehxsxTTTzVD6UPN3mWEJcOJpK7icefrP3sZPQEGXrEThazQbCMQj7vG8c+yhDBlp0S"
    "EfRY4FhU/ytoBFxyKM7thrOVSRb9YpxDZYcpQ/6XdrB4ei5XecB6GcZLE9Wx+4AbQJrZIbkAYSvHikdpxxHfb28e9Pb//Mlv/6sbdiglCoBoWJdF"
    "6PlEwTHq3KXW1NBV2vgXcqhF9hGljot/TC5wsIcfrDCwqB2RzjOxcT+d+PgoJ4BV149CqQhkE3rFEgJoSkrRTKILAP1a2OInYzIyqR+BPUzFL28X"
    "25lQLZkauZgMrUyGnhUGTpy2b3ZzN2qwP+OSM71qFsbGycsojJWJfKLgS7mCegxC4VYiPTTB9aLtv5yDgmZWHXJYExyn+srO3d037t3Z7d62Drtb"
    "B4ffevOe1bn9FkaEHrOHAxkmYPWziyVRR4+0eRyjak3GjnezGY/oB72O+tMifLCVN0KEbG6OAJlPMmbVDn3fVRZQxEDBPOLejpMRr+t4hovJ+edI"
    "0Ev6lHIOKFlaxTiT7v3mR3PIBHrCh1HE4L0RscVeqVSGsYbWe7GV98K0fct/Ln1EqF1xOHMsjyscTuEPLNbHkixYHNc7pcdUX8nh8Nw+t0c2ipXg"
    "uDPezYQDFDBwMTWNTHi6uj7kPMr4oEuEyjyP08yR94el7UIys0OUTeMXa+LlafkN8RXxapfahvhaV2zgaxPatsT29ENtjIshhkGx25kXe0UViU7n"
    "sbjTuSr2u6L7qXZsPBYHXfHtoueKu9ONNm+x4liXMeyZgSCv0k819jU0ro/HpEM5hcmBQpjnVLabBaJ4dC5GSBjxsOiGxCn5EvyBoYO4CKPtxUg1"
    "mGOIPovieCtCgK/rxeiKtQqHPMgK5DOTAtna2d/tWvfe7NzuprqJ9iKVJROP57Gqb5FkBmnXzaPZbD5/iwGUBZZTXo1onCot1c+oEHtkgB8ZFE7P"
    "C6iOGnOl0lGNPhbwkWM2QfIv4n85L1VM2zPN/pBWs0c1mjIRGZAADQg1UK0hPdhwci3Vqxj/iCcs5fo8TJQpOxDWKtUO3oktapjcp0GT5DXcM4yc"
    "+LoMh2iAvxIlPc+NhfUk86HOly/+BvVd4iyYG+BksFOPWIdMW6Yji1+MIdRZSHrC3MwyzBCLAlOf6qGkDWU81pfdgBhv3AYuUEDL3FZQ6azHvTg9"
    "LwQZo2QMMoH+MqF+pUBdNwbhMV1TCC9i/naxfUqTPMUklU2brdvZ+ik5rSsGyKmek8eUJY6bDZZbtJr9+pmZLjCdk79A4ceV0h+H789fVFXrY8Yx"
    "IBO3vJFvnqawwRRor5eocYavjN/YGv/wJCGJ1/VCHCbSNreRnGN12XRzBLkYE3DbmYyvYw5oGeKPs3GAjtSNPjuGNhoz8Ho1p2Ga/HCJpFuu8ZbG"
    "QVSWiiQ++/jk2KCjtzf/mXHONDuYEZb6Go0i6AfYOTwI8c3QNdPO50EtH1TFO8iilplnwQ/SfVC0lqZK/J6ZvEzeLtoUf3NRcOkmiVuKcgfZvVL8"
    "C42o2BbD4rVEfwEVH4QnGJ7wouPGdFnDJRBkzpS5bZ3rVSVwVcNE5KBXccdwRHszzbyYpOc2MrMYa6qwJCbETbJl6xnBxfQA7HBenESEN5XaWVyo"
    "FJNkr5rrKYZLUniQrWdmywbdM3uhMzIXzsBcAcuODKM0Fn+Y5tCDu7vf2dp+K5sxqo73NqJ3kp4ffQOHPpxMakdvF0ZMZK9TKR7RR2/KREzUNl3J"
    "yMR72fppCV1DMYL7UeS45yLFiKr0YmyoyRpfVfO2Njn23SmIJ9LnyY4H9FNTVI+WaLEmWuJDcT97cv3/8k3Ykg=="
)


def _snapshot_config() -> DeploymentConfig:
    """Settings off their defaults in most sections, so that most config classes are in the pickle."""
    return DeploymentConfig(
        name="elec", partitions=2,
        kafka={"sasl_password": "not-a-real-password", "producer": {"linger.ms": "5"}},
        model=ModelConfig(preset="hoeffding_tree", features={"x": "num", "day": "cat"}, classes=[False, True],
                          augment={"kind": "smote"}),
        drift={"detectors": [DetectorSpec(name="ADWIN", params={"delta": 0.01})],
               "performance": [PerformanceRule(min=0.6)], "data": {"enabled": True}},
        lifecycle={"challengers": [ChallengerSpec(name="tree", model=ModelConfig(preset="hoeffding_tree"), share=0.1)],
                   "alert_rules": [AlertRule(alertname="Bad", action="rollback", to="champion")]},
        scale={"mode": "keyed", "instance": "w0"},
        governance={"fairness": {"enabled": True, "attributes": [FairnessAttribute(name="day")]},
                    "erasure": {"delete_superseded": True}, "privacy": {"body": {"note": "drop"}}},
        tracing={"enabled": True, "exporter": "console"},
    )


def _config_classes() -> set[type]:
    """Every subclass of _Frozen defined in the config package."""
    found, todo = set(), [_Frozen]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("driftline.config") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def _globals(blob: bytes) -> set[tuple[str, str]]:
    """The (module, name) of every class a pickle refers to."""
    seen: set[tuple[str, str]] = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            seen.add((module, name))
            return super().find_class(module, name)

    Recording(io.BytesIO(blob)).load()
    return seen


def test_the_package_re_exports_each_class_under_its_old_name():
    assert driftline.config.DeploymentConfig is driftline.config.deployment.DeploymentConfig
    classes = _config_classes()
    assert DeploymentConfig in classes and driftline.config.TracingConfig in classes
    for cls in classes:  # a class added to a module of the package and not to __init__'s list fails here
        assert cls.__module__ == "driftline.config", cls
        assert getattr(driftline.config, cls.__name__) is cls


def test_a_config_pickled_before_the_split_loads():
    blob = zlib.decompress(base64.b64decode("".join(PICKLED_BEFORE_THE_SPLIT)))
    assert ("driftline.config", "DeploymentConfig") in _globals(blob)
    config = pickle.loads(blob)
    assert type(config) is driftline.config.deployment.DeploymentConfig
    assert config == _snapshot_config()
    assert config.kafka.sasl_password.get_secret_value() == "not-a-real-password"
    assert config.governance.erasure.delete_superseded and config.tracing.exporter == "console"


def test_a_config_pickles_with_the_names_older_builds_know():
    config = _snapshot_config()
    blob = pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL)
    names = {(m, n) for m, n in _globals(blob) if m.startswith("driftline")}
    assert names and {m for m, _ in names} == {"driftline.config"}
    assert pickle.loads(blob) == config
