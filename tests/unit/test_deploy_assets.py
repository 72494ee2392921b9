"""The deployment assets pass their checkers and agree with each other (issue "Operations", 4 and 5).

- `Dockerfile`: hadolint reports nothing; the image runs `poller` as PID 1 as a fixed non-root user.
- `config/k8s/`: the core kinds pass kubernetes-validate in strict mode; the CRDs (ServiceMonitor,
  PrometheusRule, ScaledObject, TriggerAuthentication) are checked for the structure their operators
  need; probes, ports, mounts, drain budget and security settings agree with the settings ConfigMap
  and the image; the mappings ConfigMap passes `poller validate`; the IAM policy grants what each
  source, target and destination calls.

A checker that cannot run fails the test with the reason: nothing here is skipped silently.
"""

from __future__ import annotations

import copy
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from poller.config import load_mappings, run_validate
from poller.config.settings import ENV_NESTED_DELIMITER, ENV_PREFIX, Settings, build_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
K8S = ROOT / "config" / "k8s"
ALERTS = ROOT / "config" / "prometheus" / "alerts.yaml"

KUBERNETES_VERSION = "1.33"
"""A recent release every managed Kubernetes offers; the strict schemas come from kubernetes-validate."""

CORE_API_VERSIONS = {
    "ConfigMap": "v1",
    "Deployment": "apps/v1",
    "PodDisruptionBudget": "policy/v1",
    "Service": "v1",
    "ServiceAccount": "v1",
}
CRD_API_VERSIONS = {
    "PrometheusRule": "monitoring.coreos.com/v1",
    "ScaledObject": "keda.sh/v1alpha1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "TriggerAuthentication": "keda.sh/v1alpha1",
}
OPTIONAL_MANIFESTS = {"keda-scaledobject.yaml"}
"""Kept out of kustomization.yaml's resources on purpose: one of its ScaledObjects is chosen first."""

# --------------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class Manifest:
    file: str
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind"))

    @property
    def name(self) -> str:
        return str(self.doc.get("metadata", {}).get("name"))

    def __str__(self) -> str:
        return f"{self.file}: {self.kind}/{self.name}"


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def all_manifests() -> list[Manifest]:
    found = []
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                found.append(Manifest(path.name, doc))
    return found


def the(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [m.doc for m in all_manifests() if m.kind == kind and (name is None or m.name == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''} in config/k8s, found {len(matches)}"
    return matches[0]


def deployment() -> dict[str, Any]:
    return the("Deployment", "poller")


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = deployment()["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    containers = pod_spec()["containers"]
    assert [c["name"] for c in containers] == ["poller"]
    result: dict[str, Any] = containers[0]
    return result


def container_env() -> dict[str, str]:
    return {e["name"]: e["value"] for e in container().get("env", []) if "value" in e}


def mount_for(volume_kind: str, name: str) -> str:
    """The container's mountPath of the volume of `volume_kind` (configMap, …) that names `name`."""
    volumes = {v["name"]: v for v in pod_spec()["volumes"] if v.get(volume_kind, {}).get("name") == name}
    mounts = [m for m in container()["volumeMounts"] if m["name"] in volumes]
    assert len(mounts) == 1, f"{volume_kind} {name} should be mounted once, found {mounts}"
    assert "subPath" not in mounts[0], "mount ConfigMaps as directories: subPath mounts never update"
    return str(mounts[0]["mountPath"])


def settings_text() -> str:
    text: str = the("ConfigMap", "poller-settings")["data"]["poller.yaml"]
    return text


def mappings_data() -> dict[str, str]:
    data: dict[str, str] = the("ConfigMap", "poller-mappings")["data"]
    return data


def effective_settings() -> Settings:
    """The settings the container runs with: the ConfigMap's file, overridden by the Deployment's env."""
    return build_settings(yaml.safe_load(settings_text()) or {}, container_env())


def named_port(name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert name_or_number in ports, f"probe names port {name_or_number!r}, the container has {ports}"
    return int(ports[name_or_number])


# --------------------------------------------------------------------------------------------------
# Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list), f"{self.keyword} must use the exec (JSON) form: {self.args}"
        return [str(v) for v in value]


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped; `stage` counts FROMs from 0."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    instructions, stage = [], -1
    for line in logical:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), args.strip(), stage))
    return instructions


def final_stage() -> list[Instruction]:
    instructions = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def one_instruction(keyword: str) -> Instruction:
    found = [i for i in final_stage() if i.keyword == keyword]
    assert len(found) == 1, f"the final stage should have one {keyword}, found {len(found)}"
    return found[0]


def hadolint_binary() -> str:
    beside_python = Path(sys.executable).with_name("hadolint")
    found = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: it comes with the test extras (pip install -e '.[test]')")
    return found


def run_hadolint(dockerfile: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # A config of our own, so a developer's ~/.config/hadolint.yaml cannot ignore rules, and every
    # finding down to style level fails.
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\n", encoding="utf-8")
    command = [hadolint_binary(), "--no-color", "--config", str(config), str(dockerfile)]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        pytest.fail(f"hadolint could not run on this machine ({command[0]}): {exc}")


def test_hadolint_reports_nothing(tmp_path: Path) -> None:
    result = run_hadolint(DOCKERFILE, tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_hadolint_would_catch_a_shell_form_entrypoint(tmp_path: Path) -> None:
    # The check above is only worth something if hadolint really reads the file.
    broken = tmp_path / "Dockerfile"
    text = DOCKERFILE.read_text(encoding="utf-8")
    broken.write_text(text.replace('ENTRYPOINT ["poller"]', "ENTRYPOINT poller"), encoding="utf-8")
    result = run_hadolint(broken, tmp_path)
    assert result.returncode != 0
    assert "DL3025" in result.stdout


def test_dockerfile_builds_wheels_in_a_builder_and_runs_on_slim_python() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: a builder and the final image"
    assert froms[-1] == "python:3.11-slim"
    builder = froms[0].split()
    assert builder[-2:] == ["AS", "builder"] or builder[-2:] == ["as", "builder"]
    assert any(i.keyword == "RUN" and "pip wheel" in i.args for i in instructions if i.stage == 0)
    final = final_stage()
    installs = [i for i in final if i.keyword == "RUN" and "pip install" in i.args]
    assert len(installs) == 1
    assert "from=builder" in installs[0].args
    assert "--no-index" in installs[0].args
    for instruction in final:
        assert not re.search(r"apt-get|apk |gcc|build-essential", instruction.args), (
            f"no package manager or compiler in the final image: {instruction.keyword} {instruction.args}"
        )


def test_dockerfile_runs_poller_as_pid_1_as_a_fixed_non_root_user() -> None:
    env = " ".join(i.args for i in final_stage() if i.keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    user = one_instruction("USER").args
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), f"USER should be a fixed numeric uid: {user}"
    assert gid.isdigit(), f"USER should name a fixed numeric gid: {user}"
    assert int(uid) >= 10000, f"USER should be an unprivileged uid outside the system range: {user}"
    assert one_instruction("ENTRYPOINT").exec_form() == ["poller"]
    assert one_instruction("CMD").exec_form() == ["run", "--config", "/etc/poller/poller.yaml"]
    assert one_instruction("WORKDIR").args.startswith("/")
    # The Deployment runs the same user and the same command line.
    assert pod_spec()["securityContext"]["runAsUser"] == int(uid)
    assert pod_spec()["securityContext"]["runAsGroup"] == int(gid)
    assert container()["args"] == one_instruction("CMD").exec_form()


def test_dockerfile_exposes_the_http_port_and_declares_the_state_volume() -> None:
    assert one_instruction("EXPOSE").args == str(Settings().http.port)
    volumes = one_instruction("VOLUME").exec_form()
    state_dir = str(PurePosixPath(container_env()["POLLER_STATE__PATH"]).parent)
    assert state_dir in volumes


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    excluded = False
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        if any(fnmatch(c, glob) or fnmatch(PurePosixPath(c).name, glob) for c in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_the_tree_out_but_not_what_the_build_copies() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for kept_out in (
        ".git",
        ".venv",
        ".pytest_cache",
        ".mypy_cache",
        ".hypothesis",
        "var",
        "tests",
        "poller/__pycache__",
        "poller.egg-info",
        "bench",
    ):
        assert dockerignore_excludes(kept_out, patterns), f".dockerignore should exclude {kept_out}"
    copies = [
        i for i in dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8")) if i.keyword == "COPY"
    ]
    sources = [s for i in copies if "--from" not in i.args for s in i.args.split()[:-1]]
    assert sources
    for source in sources:
        assert not dockerignore_excludes(source.rstrip("/"), patterns), f"the build copies {source}"
        assert (ROOT / source).exists()


# --------------------------------------------------------------------------------------------------
# Kubernetes manifests: schemas and structure


def core_manifests() -> Iterator[Manifest]:
    return (m for m in all_manifests() if m.kind in CORE_API_VERSIONS)


@pytest.mark.parametrize("manifest", list(core_manifests()), ids=str)
def test_core_manifests_pass_kubernetes_validate_strict(manifest: Manifest) -> None:
    assert manifest.doc["apiVersion"] == CORE_API_VERSIONS[manifest.kind]
    try:
        kubernetes_validate.validate(manifest.doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{manifest}: {path}: {exc.message}")


def test_strict_validation_would_catch_a_misspelled_field() -> None:
    broken = copy.deepcopy(deployment())
    spec = broken["spec"]["template"]["spec"]
    spec["terminationGracePeriod"] = spec.pop("terminationGracePeriodSeconds")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_every_manifest_is_a_kind_we_validate() -> None:
    manifests = all_manifests()
    assert manifests
    for manifest in manifests:
        known = CORE_API_VERSIONS | CRD_API_VERSIONS
        assert manifest.kind in known, f"{manifest}: add its kind to this test's checks"
        assert manifest.doc["apiVersion"] == known[manifest.kind], str(manifest)
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", manifest.name), f"{manifest}: metadata.name"
        assert "namespace" not in manifest.doc["metadata"], f"{manifest}: kustomization.yaml sets it"
    names = [(m.kind, m.name) for m in manifests]
    assert len(names) == len(set(names)), "duplicate kind/name"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    for resource in resources:
        assert (K8S / resource).is_file(), f"kustomization.yaml lists {resource}, which does not exist"
    assert set(resources) | OPTIONAL_MANIFESTS == {p.name for p in manifest_files()}
    images = {image["name"] for image in kustomization["images"]}
    assert container()["image"].split(":")[0] in images


def test_service_monitor_scrapes_the_metrics_port() -> None:
    monitor = the("ServiceMonitor")["spec"]
    service = the("Service", "poller")
    selector = monitor["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items(), "the ServiceMonitor selects the Service"
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert monitor["endpoints"], "spec.endpoints"
    for endpoint in monitor["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"


def test_service_routes_its_http_port_to_the_pods() -> None:
    service = the("Service", "poller")["spec"]
    pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= pod_labels.items()
    (port,) = service["ports"]
    assert port["name"] == "http"
    assert named_port(port["targetPort"]) == effective_settings().http.port
    assert deployment()["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    pdb = the("PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()


def test_prometheus_rule_is_well_formed() -> None:
    groups = the("PrometheusRule")["spec"]["groups"]
    assert groups, "spec.groups"
    for group in groups:
        assert group["name"], "every group has a name"
        assert group["rules"], f"group {group['name']} has rules"
        for rule in group["rules"]:
            assert ("alert" in rule) != ("record" in rule), rule
            assert str(rule["expr"]).strip(), rule
            assert set(rule) <= {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


def test_prometheus_rule_embeds_the_alert_rules_file() -> None:
    if not ALERTS.is_file():
        pytest.skip(
            f"{ALERTS.relative_to(ROOT)} does not exist yet: nothing to compare the PrometheusRule with"
        )
    expected = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    assert the("PrometheusRule")["spec"]["groups"] == expected, (
        "config/k8s/prometheusrule.yaml differs from config/prometheus/alerts.yaml: "
        "regenerate it as config/k8s/README.md says"
    )


def scaled_objects() -> list[dict[str, Any]]:
    return [m.doc for m in all_manifests() if m.kind == "ScaledObject"]


def test_scaled_objects_target_the_deployment() -> None:
    objects = scaled_objects()
    assert objects
    auth_names = {m.name for m in all_manifests() if m.kind == "TriggerAuthentication"}
    for obj in objects:
        spec = obj["spec"]
        target = spec["scaleTargetRef"]
        assert (target.get("kind", "Deployment"), target["name"]) == (
            "Deployment",
            deployment()["metadata"]["name"],
        )
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        assert spec["triggers"], "spec.triggers"
        for trigger in spec["triggers"]:
            assert trigger["type"]
            # KEDA's trigger metadata is map[string]string: a bare number or boolean is rejected.
            assert all(isinstance(v, str) for v in trigger["metadata"].values()), trigger["metadata"]
            if "authenticationRef" in trigger:
                assert trigger["authenticationRef"]["name"] in auth_names
    for name in auth_names:
        assert the("TriggerAuthentication", name)["spec"]["podIdentity"]["provider"] == "aws"


def trigger(kind: str) -> dict[str, str]:
    found = [t["metadata"] for o in scaled_objects() for t in o["spec"]["triggers"] if t["type"] == kind]
    assert len(found) == 1, f"one {kind} trigger"
    result: dict[str, str] = found[0]
    return result


def test_keda_has_an_sqs_depth_and_a_kafka_lag_example() -> None:
    sqs = trigger("aws-sqs-queue")
    assert sqs["awsRegion"] == effective_settings().aws.region
    # The SQS example scales on the queue the example mapping reads.
    queue_arns = {m.source_arn for m in example_mappings() if m.source_arn.startswith("arn:aws:sqs:")}
    _, _, _, region, account, queue = sqs_arn_parts(sqs["queueURL"])
    assert f"arn:aws:sqs:{region}:{account}:{queue}" in queue_arns
    kafka = trigger("kafka")
    assert {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} <= kafka.keys()


def sqs_arn_parts(url: str) -> tuple[str, str, str, str, str, str]:
    match = re.fullmatch(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com/(\d{12})/([^/]+)", url)
    assert match, f"queueURL {url}"
    return ("arn", "aws", "sqs", match[1], match[2], match[3])


# --------------------------------------------------------------------------------------------------
# Kubernetes manifests: agreement with poller's settings


def test_probes_hit_healthz_and_readyz_on_the_http_port() -> None:
    spec = container()
    port = effective_settings().http.port
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = spec[probe]["httpGet"]
        assert get["path"] == path, f"{probe} should GET {path}"
        assert named_port(get["port"]) == port, f"{probe} should use http.port {port}"
    if "startupProbe" in spec:
        get = spec["startupProbe"]["httpGet"]
        assert get["path"] in ("/healthz", "/readyz")
        assert named_port(get["port"]) == port


def test_grace_period_outlasts_the_drain_budget() -> None:
    drain = effective_settings().shutdown.drain_seconds
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert grace > drain, f"terminationGracePeriodSeconds {grace} must exceed shutdown.drain_seconds {drain}"


def test_pod_runs_non_root_on_a_read_only_root_filesystem() -> None:
    pod, box = pod_spec()["securityContext"], container()["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert box["runAsNonRoot"] is True
    assert box["readOnlyRootFilesystem"] is True
    assert box["allowPrivilegeEscalation"] is False
    assert box["capabilities"]["drop"] == ["ALL"]
    assert "add" not in box["capabilities"]
    assert pod_spec()["automountServiceAccountToken"] is False
    resources = container()["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]


def test_only_the_state_and_tmp_volumes_are_writable() -> None:
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    writable = {
        m["mountPath"]
        for m in container()["volumeMounts"]
        if not m.get("readOnly") and "configMap" not in volumes[m["name"]]
    }
    for mount in container()["volumeMounts"]:
        if "configMap" in volumes[mount["name"]]:
            assert mount.get("readOnly") is True, f"{mount['mountPath']} should be read-only"
    state_dir = str(PurePosixPath(str(effective_settings().state.path)).parent)
    assert writable == {state_dir, "/tmp"}


def test_settings_and_mappings_are_mounted_where_the_command_line_looks() -> None:
    args = container()["args"]
    config = PurePosixPath(args[args.index("--config") + 1])
    settings_dir = mount_for("configMap", "poller-settings")
    assert str(config.parent) == settings_dir
    assert config.name in the("ConfigMap", "poller-settings")["data"]
    mappings_dir = mount_for("configMap", "poller-mappings")
    entries = effective_settings().mappings
    assert [str(PurePosixPath(settings_dir) / str(e)) for e in entries] == [mappings_dir]
    assert the("ServiceAccount", pod_spec()["serviceAccountName"])["metadata"]["annotations"][
        "eks.amazonaws.com/role-arn"
    ].startswith("arn:aws:iam::")


def test_every_poller_variable_names_a_setting() -> None:
    env = container_env()
    assert "POLLER_AWS__REGION" in env
    for name in (e["name"] for e in container()["env"] if e["name"].startswith(ENV_PREFIX)):
        model: Any = Settings
        for part in name.removeprefix(ENV_PREFIX).lower().split(ENV_NESTED_DELIMITER):
            assert model is not None, f"{name} goes below a setting that has no sections"
            assert part in model.model_fields, f"{name} sets no setting"
            annotation = model.model_fields[part].annotation
            model = (
                annotation if isinstance(annotation, type) and hasattr(annotation, "model_fields") else None
            )


def write_configmaps(root: Path) -> Path:
    """The two ConfigMaps laid out as the pod sees them; returns the settings file."""
    settings_dir = root / mount_for("configMap", "poller-settings").lstrip("/")
    mappings_dir = root / mount_for("configMap", "poller-mappings").lstrip("/")
    mappings_dir.mkdir(parents=True)
    (settings_dir / "poller.yaml").write_text(settings_text(), encoding="utf-8")
    for key, text in mappings_data().items():
        (mappings_dir / key).write_text(text, encoding="utf-8")
    return settings_dir / "poller.yaml"


def test_configmaps_pass_poller_validate(tmp_path: Path) -> None:
    settings_file = write_configmaps(tmp_path)
    out = io.StringIO()
    status = run_validate(settings_file, environ=container_env(), cwd=tmp_path, out=out)
    assert status == 0, out.getvalue()
    count = len(example_mappings())
    assert out.getvalue() == f"{count} mapping{'' if count == 1 else 's'} OK, 0 problems\n", "no warnings"


@dataclass(frozen=True)
class ExampleMapping:
    name: str
    source_arn: str


def example_mappings() -> list[ExampleMapping]:
    found = []
    for text in mappings_data().values():
        doc = yaml.safe_load(text)
        entries = doc.get("EventSourceMappings", [doc])
        found += [ExampleMapping(e["Name"], e.get("EventSourceArn", "")) for e in entries]
    return found


def test_mappings_configmap_holds_the_example_mappings(tmp_path: Path) -> None:
    data = mappings_data()
    assert all(key.endswith((".yaml", ".yml")) for key in data)
    # Every key named like an example of mappings/ carries that example unchanged.
    examples = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "mappings").glob("*.yaml")}
    shared = data.keys() & examples.keys()
    assert shared, "the ConfigMap should carry at least one example of mappings/"
    for key in shared:
        assert data[key] == examples[key], f"{key} differs from mappings/{key}"
    mappings_dir = tmp_path / "mappings"
    mappings_dir.mkdir()
    for key, text in data.items():
        (mappings_dir / key).write_text(text, encoding="utf-8")
    mappings, problems = load_mappings([mappings_dir], tmp_path)
    assert problems == []
    assert sorted(m.name for m in mappings) == sorted(m.name for m in example_mappings())


# --------------------------------------------------------------------------------------------------
# IAM policy

REQUIRED_ACTIONS = {
    "sqs source": {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:DeleteMessageBatch",
        "sqs:ChangeMessageVisibility",
        "sqs:ChangeMessageVisibilityBatch",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    },
    "kinesis source": {
        "kinesis:DescribeStreamSummary",
        "kinesis:ListShards",
        "kinesis:GetShardIterator",
        "kinesis:GetRecords",
    },
    "dynamodb streams source": {
        "dynamodb:DescribeStream",
        "dynamodb:GetShardIterator",
        "dynamodb:GetRecords",
        "dynamodb:ListStreams",
    },
    "destinations": {"sqs:SendMessage", "sns:Publish", "s3:PutObject"},
    "lambda target": {"lambda:InvokeFunction"},
    "state table": {
        "dynamodb:CreateTable",
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:Scan",
    },
}
ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS = {"dynamodb:ListStreams"}


def policy_statements() -> list[dict[str, Any]]:
    policy = json.loads((K8S / "iam-policy.json").read_text(encoding="utf-8"))
    assert policy["Version"] == "2012-10-17"
    statements: list[dict[str, Any]] = policy["Statement"]
    return statements


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_iam_policy_grants_what_poller_calls_and_no_wildcards() -> None:
    statements = policy_statements()
    sids = [s["Sid"] for s in statements]
    assert len(sids) == len(set(sids)), "Sids are unique"
    for sid in sids:
        assert re.fullmatch(r"[A-Za-z0-9]+", sid), f"IAM allows only letters and digits in a Sid: {sid}"
    granted: set[str] = set()
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
        actions = as_list(statement["Action"])
        resources = as_list(statement["Resource"])
        for action in actions:
            assert re.fullmatch(r"[a-z0-9]+:[A-Za-z]+", action), f"no wildcard actions: {action}"
        if resources == ["*"]:
            assert set(actions) <= ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS, statement["Sid"]
        else:
            assert all(r.startswith("arn:aws:") and r != "arn:aws:*" for r in resources), statement["Sid"]
        granted |= set(actions)
    for purpose, actions in REQUIRED_ACTIONS.items():
        assert actions <= granted, f"{purpose}: missing {sorted(actions - granted)}"


def test_iam_policy_covers_the_example_queue() -> None:
    receive = {
        r
        for s in policy_statements()
        if "sqs:ReceiveMessage" in as_list(s["Action"])
        for r in as_list(s["Resource"])
    }
    for mapping in example_mappings():
        if mapping.source_arn.startswith("arn:aws:sqs:"):
            assert mapping.source_arn in receive, f"mapping {mapping.name} reads {mapping.source_arn}"
