"""JSON schemas of KEDA's custom resources for kubeconform, from KEDA's own CRDs.

kubeconform validates a custom resource only against a schema it is given. KEDA's CRDs
(config/crd/bases/*.yaml) are in the source of the Go module github.com/kedacore/keda/v2,
which the Go module proxy serves as a zip; this reads the CRDs straight out of that zip and
writes, for every served version of every CRD, its ``openAPIV3Schema`` as a JSON schema in
the layout kubeconform reads with
  -schema-location 'DIR/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'
as kubeconform's own openapi2jsonschema.py does: strict (an object with ``properties``
and no ``additionalProperties`` admits no other field, unless it is marked
``x-kubernetes-preserve-unknown-fields``), ``x-kubernetes-int-or-string`` as integer or
string, ``nullable`` as null allowed. Nothing else in the schemas is changed.

    python3 crd_schemas.py KEDA_MODULE_ZIP OUT_DIR      # e.g. ... keda-v2.21.0.zip .cache/deploy-tools/crd-schemas
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

CRDS = ("keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml")


def strict(node: Any) -> Any:
    """The JSON schema of one OpenAPI v3 node of a CRD, strict."""
    if isinstance(node, list):
        return [strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["oneOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def convert(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"<group>/<kind>_<version>.json": schema}`` for every served version of a CRD."""
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"].lower()
    out = {}
    for version in crd["spec"]["versions"]:
        if version.get("served", True):
            schema = strict(version["schema"]["openAPIV3Schema"])
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            out[f"{group}/{kind}_{version['name']}.json"] = schema
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: crd_schemas.py KEDA_MODULE_ZIP OUT_DIR", file=sys.stderr)
        return 2
    archive, out_dir = Path(argv[0]), Path(argv[1])
    try:
        with zipfile.ZipFile(archive) as zf:
            found = {Path(n).name: n for n in zf.namelist() if "/config/crd/bases/" in n}
            missing = [c for c in CRDS if c not in found]
            if missing:
                print(f"crd_schemas.py: {archive} has no {', '.join(missing)}", file=sys.stderr)
                return 1
            schemas = {}
            for name in CRDS:
                schemas.update(convert(yaml.safe_load(zf.read(found[name]))))
    except (OSError, zipfile.BadZipFile, yaml.YAMLError, KeyError) as exc:
        print(f"crd_schemas.py: cannot read the CRDs of {archive}: {exc}", file=sys.stderr)
        return 1
    shutil.rmtree(out_dir, ignore_errors=True)
    for rel, schema in schemas.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(f"crd_schemas.py: {len(schemas)} schemas in {out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
