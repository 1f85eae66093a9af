"""deploy/kserve: the ServingRuntime and InferenceServices validate offline against KServe's own CRD
schemas and SDK models (tests/deploy/kserve_schemas/README.md), and what the pod would run is what
the real CLI accepts, on the ports its probes and annotations name.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from rewardserve.service.client.targets import channel_target, host_port

from tests.conftest import REPO

from .commands import bind_hosts, parse_command, serve_config
from .dockerfile import Dockerfile

KSERVE = REPO / "deploy" / "kserve"
SCHEMAS = Path(__file__).parent / "kserve_schemas"
RUNTIME = KSERVE / "servingruntime.yaml"
SERVICES = {"cpu": KSERVE / "inferenceservice-cpu.yaml", "gpu": KSERVE / "inferenceservice-gpu.yaml"}
CRDS = {("serving.kserve.io/v1alpha1", "ServingRuntime"): ("servingruntime.json", "V1alpha1ServingRuntime"),
        ("serving.kserve.io/v1beta1", "InferenceService"): ("inferenceservice.json", "V1beta1InferenceService")}
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
EXIT_MARGIN_S = 5


def load(path: Path) -> dict:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return doc


def strict(schema):
    """The CRD schema with unknown fields refused, as ``kubectl apply`` (strict field validation) does."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema and not schema.get(
                "x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    return [strict(v) for v in schema] if isinstance(schema, list) else schema


def sdk_unknown_fields(value, type_name: str, classes: dict, where: str = "") -> list[str]:
    """Fields the kserve SDK's models do not have, below KServe's own types (Kubernetes types stop)."""
    if type_name.startswith("list["):
        return [x for i, v in enumerate(value) for x in sdk_unknown_fields(v, type_name[5:-1], classes, f"{where}[{i}]")]
    if type_name not in classes or not isinstance(value, dict):
        return []
    fields = classes[type_name]
    return [f"{where}.{k}" for k in value if k not in fields] + [
        x for k, v in value.items() if k in fields for x in sdk_unknown_fields(v, fields[k], classes, f"{where}.{k}")]


def validate(doc: dict) -> None:
    """Raise jsonschema.ValidationError (CRD schema) or AssertionError (SDK fields, metadata) for a bad doc."""
    schema_file, root = CRDS[(doc["apiVersion"], doc["kind"])]
    jsonschema.validate(doc, strict(json.loads((SCHEMAS / schema_file).read_text())))
    classes = json.loads((SCHEMAS / "sdk_fields.json").read_text())["classes"]
    unknown = sdk_unknown_fields(doc, root, classes)
    assert not unknown, f"not in the kserve SDK's {root}: {unknown}"
    assert DNS_1123.match(doc["metadata"]["name"]), doc["metadata"]["name"]


def runtime_container() -> dict:
    [container] = load(RUNTIME)["spec"]["containers"]
    assert container["name"] == "kserve-container"  # the name KServe merges the predictor's model spec into
    return container


def pod_argv(variant: str, name: str | None = None) -> list[str]:
    """The command KServe would run: runtime args with {{.Name}} filled in, then the model's args appended."""
    isvc = load(SERVICES[variant])
    name = name or isvc["metadata"]["name"]
    container = runtime_container()
    args = [a.replace("{{.Name}}", name) for a in container["args"]]
    return container["command"] + args + isvc["spec"]["predictor"]["model"].get("args", [])


def env() -> dict[str, str]:
    image = Dockerfile.read(REPO / "Dockerfile")
    return image.final.env() | {e["name"]: e["value"] for e in runtime_container().get("env", [])}


@pytest.mark.parametrize("path", [RUNTIME, *SERVICES.values()], ids=lambda p: p.name)
def test_manifest_validates_against_kserves_crd_schema_and_sdk(path):
    validate(load(path))


def test_the_validation_rejects_broken_manifests():
    good = load(SERVICES["cpu"])
    validate(good)
    typo = copy.deepcopy(good)
    typo["spec"]["predictor"]["model"]["storageURI"] = typo["spec"]["predictor"]["model"].pop("storageUri")
    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["predictor"]["minReplicas"] = "two"
    bad_probe = load(RUNTIME)
    bad_probe["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "grpc"  # grpc probes take a number
    for broken in (typo, wrong_type, bad_probe):
        with pytest.raises((jsonschema.ValidationError, AssertionError)):
            validate(broken)


def test_runtime_container_is_a_valid_kubernetes_container():
    # The CRD's container schema is KServe's copy of the Kubernetes one; check against the real one too.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rewardserve"},
           "spec": {"containers": [runtime_container()], "volumes": load(RUNTIME)["spec"]["volumes"]}}
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)


def test_the_runtime_says_it_speaks_grpc_v2_only():
    spec = load(RUNTIME)["spec"]
    assert spec["protocolVersions"] == ["grpc-v2"]  # no REST /v2 data plane: never claim "v2"
    text = RUNTIME.read_text()
    assert "does NOT serve KServe's REST /v2 data plane" in text
    assert "does NOT serve KServe's REST `/v2` data plane" in (REPO / "deploy" / "README.md").read_text()
    formats = {(f["name"], f["version"]) for f in spec["supportedModelFormats"]}
    for isvc in map(load, SERVICES.values()):
        model = isvc["spec"]["predictor"]["model"]
        assert (model["modelFormat"]["name"], model["modelFormat"]["version"]) in formats
        assert model["runtime"] == load(RUNTIME)["metadata"]["name"]
        assert model["protocolVersion"] == "grpc-v2"
        # Three ports: Knative's Serverless mode would route only one.
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"


@pytest.mark.parametrize("variant", SERVICES)
def test_the_pod_runs_a_valid_serve_command_on_the_probed_ports(variant):
    argv = pod_argv(variant)
    args = parse_command(argv, SERVICES[variant].name)
    assert args.command == "serve" and args.handler.__name__ == "_serve"
    config = serve_config(args, env())
    assert set(bind_hosts(config).values()) == {"0.0.0.0"}
    [model] = config.models
    assert model.name == load(SERVICES[variant])["metadata"]["name"] and model.path == "/mnt/models"
    container = runtime_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"h2c": config.port, "http": config.http_port, "metrics": config.metrics_port}
    assert container["ports"][0]["name"] == "h2c"  # KServe's Service puts the first port on 80: gRPC
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == config.port and container[probe]["grpc"].get("service", "") == ""
    annotations = load(RUNTIME)["spec"]["annotations"]
    assert int(annotations["prometheus.kserve.io/port"]) == config.metrics_port
    assert annotations["prometheus.kserve.io/path"] == "/metrics"
    assert config.max_connection_age_s > 0
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = load(SERVICES[variant])["spec"]["predictor"]["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + config.grace_period_s + EXIT_MARGIN_S
    if variant == "gpu":
        assert config.provider.value == "cuda"
    else:
        assert config.provider.value == "cpu"


def test_gpu_service_asks_for_one_gpu_on_the_gpu_image():
    gpu = load(SERVICES["gpu"])["spec"]["predictor"]
    cpu = load(SERVICES["cpu"])["spec"]["predictor"]
    assert gpu["model"]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["model"]["image"].endswith("-gpu") and runtime_container()["image"].endswith("-cpu")
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu["tolerations"])
    assert "nvidia.com/gpu" not in str(cpu)
    cpu_config = serve_config(parse_command(pod_argv("cpu")), env())
    assert cpu_config.intra_op_threads == int(cpu["model"]["resources"]["limits"]["cpu"])


def test_runs_as_the_image_user_without_privileges():
    image = Dockerfile.read(REPO / "Dockerfile")
    sc = runtime_container()["securityContext"]
    assert sc["runAsNonRoot"] is True and str(sc["runAsUser"]) == image.final.last("USER")
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in runtime_container()["volumeMounts"]}
    assert "/tmp" in mounts


def test_models_come_from_the_k8s_models_claim():
    claim = load(REPO / "deploy" / "k8s" / "base" / "models-pvc.yaml")["metadata"]["name"]
    for isvc in map(load, SERVICES.values()):
        uri = isvc["spec"]["predictor"]["model"]["storageUri"]
        assert uri.startswith(f"pvc://{claim}/"), uri


def test_the_vendored_schemas_say_where_they_come_from():
    readme = (SCHEMAS / "README.md").read_text()
    assert "0.21.0" in readme and json.loads((SCHEMAS / "sdk_fields.json").read_text())["wheel"].startswith(
        "kserve-0.21.0-")
    commit = re.search(r'^COMMIT = "(\w+)"', (SCHEMAS / "vendor.py").read_text(), re.M)[1]
    assert commit in readme


def test_the_readme_targets_the_predictor_service_on_the_grpc_port():
    readme = (REPO / "deploy" / "README.md").read_text()
    section = readme[readme.index("## KServe"):]
    # Single-quoted there: test_k8s.py checks the double-quoted targets against the k8s headless Service.
    targets = re.findall(r"'(dns:///[^']+)'", section)
    assert targets, "deploy/README.md's KServe section must show a dns:/// client target"
    for target in targets:
        assert channel_target(target) == target  # the real client takes it as a dns:/// target
        host, port = host_port(target.removeprefix("dns:///"))
        assert host.split(".")[0] == load(SERVICES["cpu"])["metadata"]["name"] + "-predictor", target
        assert port == runtime_container()["ports"][0]["containerPort"], target  # headless: the pod's port
