"""The registry suite of tests/unit/lifecycle/test_registry.py, run on SQLite and on a real
PostgreSQL server: the same test functions, the ``registry`` fixture parametrized."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from driftline.exceptions import RegistryError
from driftline.lifecycle.registry import Registry

_SUITE = Path(__file__).resolve().parents[2] / "unit" / "lifecycle" / "test_registry.py"
_spec = importlib.util.spec_from_file_location("registry_suite", _SUITE)
_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_suite)
globals().update({name: fn for name, fn in vars(_suite).items()
                  if name.startswith("test_") and name != "test_the_schema_is_plain_sql"})
_meta = _suite._meta


def _empty(url: str) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        for table in ("model_versions", "model_version_tags", "model_aliases", "lifecycle_events"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request, tmp_path):
    if request.param == "sqlite":
        return Registry(str(tmp_path / "r.sqlite"))
    url = request.getfixturevalue("postgres_url")
    _empty(url)
    return Registry(url)


def test_two_instances_share_one_postgresql_registry(postgres_url):
    _empty(postgres_url)
    a, b = Registry(postgres_url), Registry(postgres_url)
    assert a.register(_meta(1, "initial"), source="s3://bucket/m/v00000001.snap")
    assert not b.register(_meta(1, "initial"), source="s3://bucket/m/v00000001.snap")
    b.set_alias("m", "champion", 1)
    assert a.get("m", "champion")["source"] == "s3://bucket/m/v00000001.snap"


def test_a_wrong_password_is_one_line_without_the_password(postgres_url):
    host = postgres_url.removeprefix("postgresql://driftline@")
    with pytest.raises(RegistryError) as info:
        Registry(f"postgresql://driftline:not-the-password@{host}").aliases("m")
    message = str(info.value)
    assert "not-the-password" not in message and "\n" not in message and "driftline@127.0.0.1" in message
