"""Render the one sample config, deploy/driftline.toml, for containers.

There is one deployment config. Containers need a few of its settings changed, and
those changes are the tables below, applied in place (every comment of the sample is
kept). Every key changed here must already be in the sample, where it is documented.
The rendered TOML must equal the sample with these values set; anything else is an
error. Everything else a container needs comes from the environment or flags, not
from a second copy of the file: DRIFTLINE_BOOTSTRAP_SERVERS (the brokers), the secrets
(DRIFTLINE_SNAPSHOT_KEY, DRIFTLINE_ADMIN_TOKEN, DRIFTLINE_SASL_PASSWORD), and
`run --metrics-port/--admin-port`.

    python3 scripts/deploy_config.py container          # the image's /etc/driftline/driftline.toml
    python3 scripts/deploy_config.py container --scale keyed   # ... /etc/driftline/keyed.toml (also global)
    python3 scripts/deploy_config.py configmap          # rewrite the ConfigMaps of deploy/k8s (single,
                                                        # keyed/ and global/)
    python3 scripts/deploy_config.py configmap --check  # exit 1 if a committed one differs

The scale-out renderings (keyed, global) are deployments of their own (their own name, so
their own topics and consumer group) with more partitions; on Kubernetes their workers run
on several nodes, so they also take a shared version store (S3) and registry (PostgreSQL),
the two keys a rendering may add to a table of the sample (ADDED, below).

Standard library only (Python 3.11+): the image build runs it before Driftline is installed.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "deploy" / "driftline.toml"
CONFIGMAP = ROOT / "deploy" / "k8s" / "configmap.yaml"

# (section, key) -> (value, why). Section "" is the top level.
CONTAINER: dict[tuple[str, str], tuple[Any, str]] = {
    ("checkpoint", "store_url"): ("/var/lib/driftline/versions", "the image's volume"),
    ("lifecycle", "admin_host"): ("0.0.0.0", "reachable through the container's port"),
}
KUBERNETES: dict[tuple[str, str], tuple[Any, str]] = {
    **CONTAINER,
    ("", "replication"): (3, "a production cluster (needs 3 brokers)"),
}
# Scale-out: partitions >= 4 x the most workers (deploy/k8s/*/keda maxReplicaCount: 6).
PARTITIONS = 24
KEYED: dict[tuple[str, str], tuple[Any, str]] = {
    ("", "name"): ("elec-keyed", "a deployment of its own: its own topics and consumer group"),
    ("", "partitions"): (PARTITIONS, "at least 4 x the most workers (6)"),
    ("scale", "mode"): ("keyed", "a model per entity key, a task per partition"),
}
GLOBAL: dict[tuple[str, str], tuple[Any, str]] = {
    ("", "name"): ("elec-global", "a deployment of its own: its own topics and consumer group"),
    ("", "partitions"): (PARTITIONS, "at least 4 x the most predictors (6)"),
    ("scale", "mode"): ("global", "one trainer publishes versions, predictors serve them"),
}
# Workers on several nodes share one version store and one registry (docs/scaling.md); the
# credentials come from the Secret (AWS_*, PGPASSWORD), never from here.
SHARED: dict[tuple[str, str], tuple[Any, str]] = {
    ("checkpoint", "store_url"): ("s3://driftline-versions/{name}", "one store for every worker (AWS_* from the Secret)"),
    ("lifecycle", "registry_url"): ("postgresql://driftline@postgres:5432/driftline",
                                    "one registry for every worker (PGPASSWORD from the Secret)"),
}
# Keys a rendering may add to their table when the sample lacks them (it documents them
# commented out or not at all); every other override must replace a line of the sample.
ADDED = {("lifecycle", "registry_url")}
TARGETS = {
    "container": CONTAINER, "kubernetes": KUBERNETES,
    "container-keyed": {**CONTAINER, **KEYED}, "container-global": {**CONTAINER, **GLOBAL},
    "keyed": {**KUBERNETES, **KEYED, **SHARED}, "global": {**KUBERNETES, **GLOBAL, **SHARED},
}
# Target -> (ConfigMap file, its component label); read at call time (tests move them).
CONFIGMAP_TARGETS = {"kubernetes": "CONFIGMAP", "keyed": "KEYED_CONFIGMAP", "global": "GLOBAL_CONFIGMAP"}
KEYED_CONFIGMAP = ROOT / "deploy" / "k8s" / "keyed" / "configmap.yaml"
GLOBAL_CONFIGMAP = ROOT / "deploy" / "k8s" / "global" / "configmap.yaml"


class RenderError(ValueError):
    """The sample and the overrides disagree (a key missing, a result that differs)."""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for plain text
    raise RenderError(f"unsupported override value {value!r}")


def _section(line: str) -> str | None:
    """The table a header line opens (``[a.b]`` or ``[[a.b]]``), None for other lines."""
    stripped = line.strip()
    return stripped.strip("[]").strip() if stripped.startswith("[") else None


def _resolve(overrides: dict[tuple[str, str], tuple[Any, str]]) -> dict[tuple[str, str], tuple[Any, str]]:
    """String values may name the rendered deployment: ``{name}``."""
    name = overrides.get(("", "name"), (None, ""))[0]
    return {k: (v.format(name=name) if isinstance(v, str) and name else v, why) for k, (v, why) in overrides.items()}


def render_toml(target: str = "container", sample: Path = SAMPLE) -> str:
    """The sample's text with the target's overrides set in place."""
    overrides = _resolve(TARGETS[target])
    text = sample.read_text()
    lines, section, seen = [], "", set()

    def add_missing(section: str) -> None:
        """Before the next table opens: the ADDED keys of the table the sample lacks."""
        at = len(lines)
        while at > 0 and not lines[at - 1].strip():
            at -= 1
        for (sec, key), (value, why) in overrides.items():
            if sec == section and (sec, key) in ADDED and (sec, key) not in seen:
                lines.insert(at, f"{key} = {_toml_value(value)}  # {target}: {why} (scripts/deploy_config.py)\n")
                at += 1
                seen.add((sec, key))

    for line in text.splitlines(keepends=True):
        if (name := _section(line)) is not None:
            add_missing(section)
            section = name
        else:
            key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith("#") else None
            if key is not None and (section, key) in overrides:
                value, why = overrides[(section, key)]
                line = f"{key} = {_toml_value(value)}  # {target}: {why} (scripts/deploy_config.py)\n"
                seen.add((section, key))
        lines.append(line)
    add_missing(section)
    missing = set(overrides) - seen
    if missing:
        raise RenderError(f"{sample}: no such keys to override: {sorted(missing)}; add them to the sample")
    out = "".join(lines)
    expected = tomllib.loads(text)
    for (sec, key), (value, _) in overrides.items():
        (expected.setdefault(sec, {}) if sec else expected)[key] = value
    if tomllib.loads(out) != expected:
        raise RenderError(f"rendering {sample} for {target} changed more than the overrides")
    if "\t" in out:
        raise RenderError(f"{sample}: tabs do not survive a YAML block scalar; use spaces")
    return out


def render_configmap(sample: Path = SAMPLE, target: str = "kubernetes") -> str:
    """A ConfigMap of deploy/k8s: the sample's rendering for ``target`` (kubernetes: the
    single-mode deploy/k8s/configmap.yaml; keyed, global: deploy/k8s/<target>/configmap.yaml)."""
    toml_text = render_toml(target, sample)
    name = tomllib.loads(toml_text)["name"]
    changed = "\n".join(f"#   {f'{sec}.{key}' if sec else key} = {_toml_value(v)}: {why}"
                        for (sec, key), (v, why) in _resolve(TARGETS[target]).items())
    component = {"kubernetes": "processor", "keyed": "worker", "global": "global"}[target]
    where = "statefulset.yaml" if target == "kubernetes" else "the StatefulSets here"
    body = "".join(f"    {line}" if line.strip() else "\n" for line in toml_text.splitlines(keepends=True))
    return (
        "# GENERATED by scripts/deploy_config.py from deploy/driftline.toml: do not edit; edit the\n"
        "# sample and run `python3 scripts/deploy_config.py configmap` (a unit test checks).\n"
        "# Mounted at /etc/driftline/driftline.toml. Changed from the sample for the cluster:\n"
        f"{changed}\n"
        f"# DRIFTLINE_BOOTSTRAP_SERVERS ({where}) overrides [kafka] bootstrap_servers.\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        f"  name: driftline-{name}\n"
        "  labels:\n"
        "    app.kubernetes.io/name: driftline\n"
        f"    app.kubernetes.io/instance: {name}\n"
        f"    app.kubernetes.io/component: {component}\n"
        "data:\n"
        "  driftline.toml: |\n"
        f"{body}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["container", "configmap"])
    parser.add_argument("--sample", type=Path, default=SAMPLE, help="the sample config (default: %(default)s)")
    parser.add_argument("--scale", choices=["single", "keyed", "global"], default="single",
                        help="container: the rendering for this [scale] mode (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="configmap: compare with the committed files")
    args = parser.parse_args(argv)
    try:
        if args.what == "container":
            sys.stdout.write(render_toml("container" if args.scale == "single" else f"container-{args.scale}",
                                         args.sample))
            return 0
        texts = {getattr(sys.modules[__name__], attr): render_configmap(args.sample, target)
                 for target, attr in CONFIGMAP_TARGETS.items()}
    except (OSError, RenderError, tomllib.TOMLDecodeError) as exc:
        print(f"deploy_config.py: {exc}", file=sys.stderr)
        return 1
    if args.check:
        stale = []
        for path, text in texts.items():
            current = path.read_text() if path.exists() else ""
            if current != text:
                sys.stderr.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                           str(path), "generated"))
                stale.append(str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path))
        if stale:
            print(f"deploy_config.py: {', '.join(stale)} stale: run "
                  "`python3 scripts/deploy_config.py configmap`", file=sys.stderr)
            return 1
        return 0
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
