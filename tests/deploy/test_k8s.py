"""deploy/k8s: the manifests validate against the Kubernetes API schemas (offline, with
kubernetes-validate), and what they run and probe is what the real CLI and config produce.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from rewardserve.service.client.targets import channel_target, host_port

from tests.conftest import REPO

from .commands import bind_hosts, open_ports, parse_command, serve_config
from .dockerfile import Dockerfile

K8S = REPO / "deploy" / "k8s"
VARIANTS = ("cpu", "gpu")
MANIFESTS = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")
# Drain margin: after preStop and the server's grace period, time for the process to exit.
EXIT_MARGIN_S = 5
# What may differ between the CPU and the GPU Deployment (everything else must stay in step).
GPU_ONLY_PATHS = ("spec.template.spec.tolerations", "spec.template.spec.containers.0.image",
                  "spec.template.spec.containers.0.args", "spec.template.spec.containers.0.resources")


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def deployment(variant: str) -> dict:
    (doc,) = load(K8S / variant / "deployment.yaml")
    assert doc["kind"] == "Deployment"
    return doc


def only(items: list[dict], **match) -> dict:
    found = [i for i in items if all(i.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one item with {match}, got {found}"
    return found[0]


def base(kind: str) -> dict:
    return only([d for p in (K8S / "base").glob("*.yaml") if p.name != "kustomization.yaml" for d in load(p)],
                kind=kind)


@pytest.fixture(scope="module")
def image() -> Dockerfile:
    return Dockerfile.read(REPO / "Dockerfile")


def container_config(variant: str, image: Dockerfile):
    """The container of a variant, its parsed command, and the ServiceConfig the server would build."""
    container = only(deployment(variant)["spec"]["template"]["spec"]["containers"], name="rewardserve")
    argv = container.get("command", image.final.exec_form("ENTRYPOINT")) + container.get("args", [])
    args = parse_command(argv, f"{variant}/deployment.yaml")
    assert args.command == "serve" and args.handler.__name__ == "_serve"
    env = image.final.env() | {e["name"]: e["value"] for e in container.get("env", [])}
    return container, serve_config(args, env)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_validates_against_the_kubernetes_schema(path):
    docs = load(path)
    assert docs
    for doc in docs:
        # strict: unknown fields are errors too (a misspelt key would otherwise be ignored by the API).
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_the_validator_rejects_broken_manifests():
    good = deployment("cpu")
    kubernetes_validate.validate(good, kubernetes_validate.latest_version(), strict=True)
    typo = copy.deepcopy(good)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = typo["spec"]["template"]["spec"][
        "containers"][0].pop("readinessProbe")
    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["replicas"] = "two"
    for broken in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_kustomizations_cover_every_manifest():
    listed = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        for resource in yaml.safe_load(kustomization.read_text())["resources"]:
            target = (kustomization.parent / resource).resolve()
            assert target.exists(), f"{kustomization}: {resource} does not exist"
            if target.is_file():
                listed.add(target)
            else:
                assert (target / "kustomization.yaml").is_file(), f"{kustomization}: {resource} is no kustomization"
    assert listed == {p.resolve() for p in MANIFESTS}
    for variant in VARIANTS:
        assert "../base" in yaml.safe_load((K8S / variant / "kustomization.yaml").read_text())["resources"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_container_runs_a_valid_serve_command_on_the_probed_ports(variant, image):
    container, config = container_config(variant, image)
    assert set(bind_hosts(config).values()) == {"0.0.0.0"}, bind_hosts(config)  # probes come from the kubelet
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": config.port, "metrics": config.metrics_port}
    assert set(ports.values()) == set(open_ports(config).values())
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        # grpc.health.v1 on the gRPC port; "" (no service field) is the whole server.
        assert container[probe]["grpc"]["port"] == config.port, probe
        assert container[probe]["grpc"].get("service", "") == ""
    annotations = deployment(variant)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == config.metrics_port
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("variant", VARIANTS)
def test_models_come_from_the_read_only_volume(variant, image):
    container, config = container_config(variant, image)
    pod = deployment(variant)["spec"]["template"]["spec"]
    mount = only(container["volumeMounts"], name="models")
    assert mount["readOnly"] is True
    assert {m.name for m in config.models} == {"hh", "toxicity"}
    assert all(Path(m.path).parent == Path(mount["mountPath"]) for m in config.models), config.models
    claim = only(pod["volumes"], name="models")["persistentVolumeClaim"]
    assert claim["claimName"] == base("PersistentVolumeClaim")["metadata"]["name"] and claim["readOnly"] is True
    # Several replicas mount the claim at once, on different nodes.
    assert set(base("PersistentVolumeClaim")["spec"]["accessModes"]) & {"ReadOnlyMany", "ReadWriteMany"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_termination_leaves_time_for_the_server_to_drain(variant, image):
    container, config = container_config(variant, image)
    pod = deployment(variant)["spec"]["template"]["spec"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop > 0
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + config.grace_period_s + EXIT_MARGIN_S, (
        pod["terminationGracePeriodSeconds"], pre_stop, config.grace_period_s)


@pytest.mark.parametrize("variant", VARIANTS)
def test_runs_as_the_image_user_without_privileges(variant, image):
    container, _ = container_config(variant, image)
    pod = deployment(variant)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == image.final.last("USER")
    gid = re.search(r"groupadd --gid (\d+)", " ".join(image.final.all("RUN")))[1]
    assert str(pod["securityContext"]["runAsGroup"]) == gid
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False


def test_gpu_variant_asks_for_one_gpu_and_runs_on_cuda(image):
    gpu, gpu_config = container_config("gpu", image)
    cpu, cpu_config = container_config("cpu", image)
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["resources"]["requests"].get("nvidia.com/gpu", 1) == 1
    assert gpu_config.provider.value == "cuda" and cpu_config.provider.value == "cpu"
    assert "nvidia.com/gpu" not in str(cpu["resources"])
    # CPU: one ONNX Runtime thread per CPU of the limit, not one per core of the host.
    assert cpu_config.intra_op_threads == int(cpu["resources"]["limits"]["cpu"])
    assert gpu["image"].endswith("-gpu") and cpu["image"].endswith("-cpu")


@pytest.mark.parametrize("variant", VARIANTS)
def test_resource_names_are_real(variant, image):
    # The schema allows any key here (extended resources); the API server would reject a typo.
    container, _ = container_config(variant, image)
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) <= {"cpu", "memory", "ephemeral-storage", "nvidia.com/gpu"}


def test_cpu_and_gpu_deployments_differ_only_where_they_must():
    def flatten(value, prefix=""):
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}{key}.").items()}
        if isinstance(value, list):
            return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}{i}.").items()}
        return {prefix.rstrip("."): value}

    cpu, gpu = flatten(deployment("cpu")), flatten(deployment("gpu"))
    differing = {k for k in cpu.keys() | gpu.keys() if cpu.get(k) != gpu.get(k)}
    unexpected = {k for k in differing if not k.startswith(GPU_ONLY_PATHS)}
    assert not unexpected, f"cpu and gpu deployments drifted apart: {sorted(unexpected)}"


def test_headless_service_fronts_the_pods():
    service = base("Service")
    assert service["spec"]["clusterIP"] == "None"  # one DNS record per pod: client-side balancing
    pod = deployment("cpu")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert deployment("cpu")["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    container_ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in container_ports and port["port"] == container_ports[port["targetPort"]]
    pdb = base("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_prometheus_and_the_readme_find_replicas_through_the_service():
    service = base("Service")
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    dns = f"{service['metadata']['name']}.default.svc.cluster.local"
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    job = only(config["scrape_configs"], job_name="rewardserve-k8s")
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == [dns] and sd["type"] == "A" and sd["port"] == ports["metrics"]
    # The documented client target is accepted by the real client and names the Service's gRPC port.
    readme = (REPO / "deploy" / "README.md").read_text()
    targets = set(re.findall(r'"(dns:///[^"]+)"', readme))
    assert targets, "deploy/README.md must show a dns:/// client target"
    for target in targets:
        assert channel_target(target) == target
        host, port = host_port(target.removeprefix("dns:///"))
        assert host.split(".")[0] == service["metadata"]["name"] and port == ports["grpc"], target
