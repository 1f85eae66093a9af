"""Rebuild the vendored KServe schemas (run by hand; the tests only read the JSON files).

    python tests/deploy/kserve_schemas/vendor.py KSERVE_GIT_DIR KSERVE_WHEEL

* ``servingruntime.json`` / ``inferenceservice.json``: the ``openAPIV3Schema`` of KServe's own
  CRDs (``config/crd/full/serving.kserve.io_{servingruntimes,inferenceservices}.yaml`` at
  :data:`COMMIT`), ``status`` dropped, and the InferenceService cut to the parts the examples use
  (:data:`KEEP`): a manifest that uses a removed field fails validation until it is kept here.
* ``sdk_fields.json``: the JSON field names and types of every KServe model class reachable from
  ``V1alpha1ServingRuntime`` and ``V1beta1InferenceService`` in the kserve wheel (read with
  ``ast``, nothing imported: the wheel pins protobuf < 7).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

COMMIT = "aaac4e294"
HERE = Path(__file__).parent
KEEP = {  # InferenceService: the properties kept at each cut level
    "spec": {"predictor"},
    "spec.predictor": {"model", "minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "tolerations",
                       "nodeSelector", "serviceAccountName", "timeout", "containerConcurrency", "annotations",
                       "labels", "securityContext", "automountServiceAccountToken", "volumes", "deploymentStrategy",
                       "terminationGracePeriodSeconds"},
}
ROOTS = ("V1alpha1ServingRuntime", "V1beta1InferenceService")


def crd_schema(git_dir: str, name: str, version: str) -> dict:
    text = subprocess.run(["git", "--git-dir", git_dir, "show", f"{COMMIT}:config/crd/full/serving.kserve.io_{name}.yaml"],
                          check=True, capture_output=True, text=True).stdout
    crd = yaml.safe_load(text)
    [v] = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = v["schema"]["openAPIV3Schema"]
    schema["properties"].pop("status", None)
    return schema


def cut(schema: dict) -> dict:
    for path, keep in KEEP.items():
        node = schema
        for part in path.split("."):
            node = node["properties"][part]
        node["properties"] = {k: v for k, v in node["properties"].items() if k in keep}
    return schema


def sdk_fields(wheel: str) -> dict:
    """{class: {json name: type string}} from the wheel's generated models."""
    classes = {}
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith("kserve/models/") and name.endswith(".py"):
                for node in ast.walk(ast.parse(z.read(name))):
                    if isinstance(node, ast.ClassDef):
                        found = {}
                        for stmt in node.body:
                            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else None
                            if isinstance(target, ast.Name) and target.id in ("openapi_types", "attribute_map"):
                                found[target.id] = ast.literal_eval(stmt.value)
                        if found:
                            classes[node.name] = {found["attribute_map"][k]: t for k, t in found["openapi_types"].items()}
    reach, todo = {}, list(ROOTS)
    while todo:
        c = todo.pop()
        if c in reach or c not in classes:
            continue
        reach[c] = classes[c]
        todo += [t for types in classes[c].values() for t in re.findall(r"\w+", types) if t in classes]
    return {"wheel": Path(wheel).name, "classes": dict(sorted(reach.items()))}


def main(git_dir: str, wheel: str) -> None:
    out = {"servingruntime.json": crd_schema(git_dir, "servingruntimes", "v1alpha1"),
           "inferenceservice.json": cut(crd_schema(git_dir, "inferenceservices", "v1beta1")),
           "sdk_fields.json": sdk_fields(wheel)}
    for name, data in out.items():
        (HERE / name).write_text(json.dumps(data, indent=None, separators=(",", ":"), sort_keys=True) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
