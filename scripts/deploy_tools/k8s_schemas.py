"""Kubernetes JSON schemas for kubeconform, from the kubernetes-validate wheel (PyPI).

kubeconform normally downloads its schemas from a GitHub repository, which this project's
machines cannot reach. The kubernetes-validate package ships the same OpenAPI-derived
schemas (strict variant: no unknown fields) for every recent Kubernetes release, laid out
for its own resolver: each kind's file has an absolute "$id" and refers to
"/api/_definitions.json#/$defs/...". This writes one release's files with the "$id"s
removed and those references made relative ("_definitions.json#/$defs/..."), which is the
layout kubeconform reads with
  -schema-location 'DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json'
The schemas themselves are not changed.

    python3 k8s_schemas.py WHEEL K8S_VERSION OUT_DIR     # e.g. ... 1.34.0 .cache/deploy-tools/k8s-schemas
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

_DEFS = "/api/_definitions.json#"


def _relocate(node: Any) -> Any:
    if isinstance(node, dict):
        node.pop("$id", None)
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_DEFS):
                node[key] = value.removeprefix("/api/")
            else:
                _relocate(value)
    elif isinstance(node, list):
        for value in node:
            _relocate(value)
    return node


def extract(wheel: Path, version: str, out: Path) -> int:
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{version}-local-strict/"
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    count = 0
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith(prefix) and name.endswith(".json"):
                schema = _relocate(json.loads(zf.read(name)))
                (tmp / name.removeprefix(prefix)).write_text(json.dumps(schema))
                count += 1
    if count == 0 or not (tmp / "_definitions.json").exists():
        shutil.rmtree(tmp)
        raise SystemExit(f"k8s_schemas.py: {wheel} has no schemas for Kubernetes {version}")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return count


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    n = extract(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
    print(f"k8s_schemas.py: {n} schemas for Kubernetes {sys.argv[2]} in {sys.argv[3]}", file=sys.stderr)
