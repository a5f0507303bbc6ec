"""The Helm chart: lint, render with default and non-default values, and check what it grants and
what it tells the operator. Skipped without a helm binary (see chart.find_helm); the CRD copies
and versions are checked without one."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import yaml

import noetl
from noetl.cli import app
from noetl.kube.settings import OperatorSettings, default_images
from tests.deploy.chart import (
    CHART,
    NAMESPACE,
    ROOT,
    SCENARIOS,
    HelmError,
    aggregated,
    find_helm,
    helm,
    render_chart,
)

needs_helm = pytest.mark.skipif(
    find_helm() is None, reason="no helm binary on PATH or in the tests/cluster cache"
)

# What the operator does in a namespace it serves (and nothing more): (apiGroup, resource, verb).
# Each is a call of noetl/kube/api.py or a kopf watch; test_rbac.py runs the operator with them.
NAMESPACED_RULES = {
    *(("noetl.io", "executions", v) for v in ("get", "list", "watch", "create", "delete", "patch")),
    ("noetl.io", "executions/status", "patch"),
    *(("noetl.io", "playbooks", v) for v in ("get", "list", "watch")),
    ("noetl.io", "playbooks/status", "patch"),
    *(("noetl.io", "cronplaybooks", v) for v in ("get", "list", "watch")),
    ("noetl.io", "cronplaybooks/status", "patch"),
    ("noetl.io", "cronplaybooks/finalizers", "update"),
    *(("batch", "jobs", v) for v in ("list", "watch", "create", "delete")),
    *(("", "pods", v) for v in ("list", "watch")),
    ("", "pods/log", "get"),
    *(("", "configmaps", v) for v in ("get", "list", "create", "patch")),
    *(("", "events", v) for v in ("create", "list")),
}
CRD_RULES = {
    ("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")
}
NAMESPACE_RULES = {("", "namespaces", v) for v in ("list", "watch")}
PEERING_VERBS = ("get", "list", "watch", "patch")


def triples(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def is_ui(manifest: dict[str, Any]) -> bool:
    return manifest["metadata"]["labels"].get("app.kubernetes.io/component") == "ui"


def only(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one object of `kind` of the operator itself (not the web view's, nor people's roles)."""
    found = [m for m in manifests if m["kind"] == kind and not aggregated(m) and not is_ui(m)]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (operator,) = only(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    return operator


def env_of(manifests: list[dict[str, Any]]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(manifests)["env"]}


@pytest.fixture(scope="module")
def renders() -> dict[str, list[dict[str, Any]]]:
    if find_helm() is None:
        pytest.skip("no helm binary on PATH or in the tests/cluster cache")
    return {name: render_chart(values) for name, values in SCENARIOS.items()}


def test_chart_crds_are_the_generated_ones() -> None:
    generated = sorted(path.name for path in (ROOT / "crds").glob("*.yaml"))
    assert generated, "no CRDs in crds/"
    for name in generated:
        assert (CHART / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), (
            f"run `make chart-crds`: {name} differs"
        )
    # Besides them, only kopf's peering CRDs (see the comment in that file for why they are here).
    extra = {path.name for path in (CHART / "crds").iterdir()} - set(generated)
    assert extra == {"kopf.dev_peerings.yaml"}


def test_chart_version_follows_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == noetl.__version__
    assert chart["version"] == "0.1.0"


@needs_helm
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_lint(scenario: str) -> None:
    helm("lint", "--strict", str(CHART), values=SCENARIOS[scenario])


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_manifests_are_well_formed(renders: dict[str, list[dict[str, Any]]], scenario: str) -> None:
    manifests = renders[scenario]
    for manifest in manifests:
        assert manifest.get("apiVersion") and manifest.get("kind"), manifest
        assert manifest["metadata"].get("name"), manifest
        assert manifest["metadata"]["labels"]["app.kubernetes.io/instance"] == "noetl-operator"
    names = Counter(
        (m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"]) for m in manifests
    )
    assert max(names.values()) == 1, f"duplicate objects: {names}"


@needs_helm
def test_crds_render_with_the_chart() -> None:
    crds = [m for m in render_chart(include_crds=True) if m["kind"] == "CustomResourceDefinition"]
    assert {crd["metadata"]["name"] for crd in crds} == {
        "playbooks.noetl.io",
        "executions.noetl.io",
        "cronplaybooks.noetl.io",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }


def test_default_is_cluster_wide(renders: dict[str, list[dict[str, Any]]]) -> None:
    manifests = renders["default"]
    assert Counter(m["kind"] for m in manifests) == {
        "ServiceAccount": 1,
        "ClusterRole": 3,
        "ClusterRoleBinding": 1,
        "Service": 1,
        "Deployment": 1,
    }
    assert triples(only(manifests, "ClusterRole")) == NAMESPACED_RULES | CRD_RULES | NAMESPACE_RULES
    binding = only(manifests, "ClusterRoleBinding")
    account = only(manifests, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": NAMESPACE}
    ]
    assert binding["roleRef"]["name"] == only(manifests, "ClusterRole")["metadata"]["name"]
    assert "NOETL_NAMESPACES" not in env_of(manifests)
    # kube-system and the operator's own namespace are left alone.
    assert OperatorSettings.from_env(env_of(manifests)).excluded_namespaces == [
        "kube-system",
        "kube-public",
        "kube-node-lease",
        NAMESPACE,
    ]


def test_namespaced_mode_grants_only_in_watched_namespaces(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    manifests = renders["namespaced"]
    peering = {("kopf.dev", "kopfpeerings", verb) for verb in PEERING_VERBS}
    roles = {
        m["metadata"]["namespace"]: m for m in manifests if m["kind"] == "Role" and not is_ui(m)
    }
    assert set(roles) == {"team-a", "team-b"}
    for role in roles.values():
        assert triples(role) == NAMESPACED_RULES | peering
    bindings = {
        m["metadata"]["namespace"]: m
        for m in manifests
        if m["kind"] == "RoleBinding" and not is_ui(m)
    }
    assert set(bindings) == {"team-a", "team-b"}
    account = only(manifests, "ServiceAccount")["metadata"]["name"]
    for binding in bindings.values():
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": roles["team-a"]["metadata"]["name"],
        }
    # kopf scans nothing with exact namespaces: no cluster-wide right for the operator (the
    # aggregated roles are for people, granted through the cluster's own edit/view roles).
    assert not [
        m
        for m in manifests
        if m["kind"] in ("ClusterRole", "ClusterRoleBinding") and not aggregated(m)
    ]
    assert env_of(manifests)["NOETL_NAMESPACES"] == "team-a,team-b"
    assert "NOETL_EXCLUDED_NAMESPACES" not in env_of(manifests)
    peerings = [m for m in manifests if m["kind"] == "KopfPeering"]
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings) == [
        ("team-a", "noetl-ha"),
        ("team-b", "noetl-ha"),
    ]
    assert not [m for m in manifests if m["kind"] == "ClusterKopfPeering"]


@needs_helm
def test_cluster_wide_peering() -> None:
    manifests = render_chart({"peering": {"enabled": True}})
    peering = {("kopf.dev", "clusterkopfpeerings", verb) for verb in PEERING_VERBS}
    assert (
        triples(only(manifests, "ClusterRole"))
        == NAMESPACED_RULES | CRD_RULES | NAMESPACE_RULES | peering
    )
    assert only(manifests, "ClusterKopfPeering")["metadata"]["name"] == "noetl"
    assert "--peering=noetl" in container(manifests)["args"]


def test_service_monitor(renders: dict[str, list[dict[str, Any]]]) -> None:
    assert not [m for m in renders["default"] if m["kind"] == "ServiceMonitor"]
    manifests = renders["namespaced"]
    monitor = only(manifests, "ServiceMonitor")
    service = only(manifests, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_deployment_is_locked_down(renders: dict[str, list[dict[str, Any]]], scenario: str) -> None:
    manifests = renders[scenario]
    deployment = only(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    operator = container(manifests)
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["replicas"] == SCENARIOS[scenario].get("replicaCount", 1)
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert operator["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert operator["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert operator["resources"]["requests"] and operator["resources"]["limits"]
    ports = {port["name"]: port["containerPort"] for port in operator["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        assert operator[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert pod["serviceAccountName"] == only(manifests, "ServiceAccount")["metadata"]["name"]


def test_operator_image(renders: dict[str, list[dict[str, Any]]]) -> None:
    assert (
        container(renders["default"])["image"]
        == f"ghcr.io/noetl/noetl-operator:{noetl.__version__}"
    )
    assert container(renders["default"])["imagePullPolicy"] == "IfNotPresent"
    assert container(renders["namespaced"])["image"] == "registry.example/noetl/operator:dev"
    assert container(renders["namespaced"])["imagePullPolicy"] == "Always"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_args_are_options_of_noetl_operator(
    renders: dict[str, list[dict[str, Any]]], scenario: str
) -> None:
    # The image's entrypoint is `python -m noetl operator`: the args must parse as its options.
    command = app.get_command(app.make_context("noetl", ["operator"]), "operator")
    assert command is not None
    params = command.make_context("operator", list(container(renders[scenario])["args"])).params
    assert params["metrics_port"] == 8080
    assert params["health_port"] == 8081
    assert params["peering"] == ("noetl-ha" if scenario == "namespaced" else None)


def test_default_env_gives_the_operator_defaults(renders: dict[str, list[dict[str, Any]]]) -> None:
    settings = OperatorSettings.from_env(env_of(renders["default"]))
    assert settings.model_copy(update={"excluded_namespaces": []}) == OperatorSettings()
    # Nothing a playbook could ask for is allowed by default.
    assert (
        settings.allowed_tolerations,
        settings.allowed_node_selectors,
        settings.allowed_secrets,
    ) == ([], {}, [])
    assert settings.images == default_images()


def test_values_reach_the_operator_settings(renders: dict[str, list[dict[str, Any]]]) -> None:
    settings = OperatorSettings.from_env(env_of(renders["namespaced"]))
    values = SCENARIOS["namespaced"]["settings"]
    assert settings.namespaces == ["team-a", "team-b"]
    assert settings.images == {**default_images(), **SCENARIOS["namespaced"]["plugins"]["images"]}
    assert settings.image_pull_policy == "Never"
    assert settings.step_resources == values["stepResources"]
    assert settings.step_node_selector == {"pool": "batch"}
    assert settings.step_tolerations == values["stepTolerations"]
    assert settings.allowed_tolerations == [{"key": "gpu", "effect": "NoSchedule"}]
    assert settings.allowed_node_selectors == {"pool": ["batch", "gpu-*"]}
    assert settings.allowed_secrets == ["team-a/pg", "team-*/smtp"]
    assert settings.step_service_account == "noetl-steps"
    assert settings.step_timeout_seconds == 600
    assert settings.finally_grace_seconds == 45
    assert settings.step_run_as_user == 65532
    assert settings.job_ttl_seconds == 3600
    assert settings.execution_ttl_seconds == 2_000_000
    assert settings.max_running_jobs_per_namespace == 25
    assert settings.api_qps == 7.5
    assert settings.api_burst == 15


def test_pod_placement(renders: dict[str, list[dict[str, Any]]]) -> None:
    pod = only(renders["namespaced"], "Deployment")["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"] == [{"key": "system", "operator": "Exists"}]
    assert pod["metadata"]["annotations"] == {"example.com/team": "data"}
    assert "nodeSelector" not in only(renders["default"], "Deployment")["spec"]["template"]["spec"]


@needs_helm
@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"watchNamespace": ["a"]}, "watchNamespace"),
        ({"settings": {"stepTimeout": 60}}, "stepTimeout"),
        ({"plugins": {"images": {"shel": "x:1"}}}, "shel"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"settings": {"stepTimeoutSeconds": "1h"}}, "stepTimeoutSeconds"),
        ({"replicaCount": 2}, "peering.enabled"),
        ({"settings": {"allowedTolerations": [{"key": "gpu", "efect": "NoSchedule"}]}}, "efect"),
        ({"settings": {"allowedSecrets": ["pg"]}}, "allowedSecrets"),
        ({"excludeNamespaces": ["Kube_System"]}, "excludeNamespaces"),
    ],
)
def test_bad_values_are_refused(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmError, match=complaint):
        render_chart(values)


def _value_paths(values: dict[str, Any], schema: dict[str, Any], node: dict[str, Any]) -> list[str]:
    """Dotted paths of the chart's options: keys of structured objects are options themselves,
    the keys inside free-form maps (resources, selectors) are values."""
    paths = []
    for key, value in values.items():
        sub = (node.get("properties") or {}).get(key, {})
        while "$ref" in sub:
            sub = schema["definitions"][sub["$ref"].rsplit("/", 1)[1]]
        if isinstance(value, dict) and sub.get("additionalProperties") is False:
            paths += [f"{key}.{path}" for path in _value_paths(value, schema, sub)]
        else:
            paths.append(key)
    return paths


def test_the_chart_readme_lists_every_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()
    paths = _value_paths(values, schema, schema)
    assert "settings.apiBurst" in paths and "plugins.images.shell" in paths
    assert [path for path in paths if f"| `{path}` |" not in readme] == []


def test_aggregated_roles_give_people_edit_and_view(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    roles = {
        label.rsplit("-", 1)[1]: m
        for m in renders["default"]
        if m["kind"] == "ClusterRole" and aggregated(m)
        for label in m["metadata"]["labels"]
        if label.startswith("rbac.authorization.k8s.io/aggregate-to-")
    }
    assert set(roles) == {"edit", "admin", "view"}
    kinds = ("playbooks", "executions", "cronplaybooks")
    assert triples(roles["edit"]) >= {("noetl.io", kind, "create") for kind in kinds}
    assert {verb for _, _, verb in triples(roles["view"])} == {"get", "list", "watch"}
    assert {resource for _, resource, _ in triples(roles["view"])} == {
        *kinds,
        *(f"{kind}/status" for kind in kinds),
    }
    assert not [
        m for m in render_chart({"rbac": {"aggregateToDefaultRoles": False}}) if aggregated(m)
    ]


# The web view: (apiGroup, resource, verb) it may use, read-only unless its actions are on.
READ = ("get", "list", "watch")
UI_READ_RULES = {
    *(("noetl.io", resource, v) for resource in ("playbooks", "executions") for v in READ),
    *(("", resource, v) for resource in ("pods", "configmaps", "events") for v in READ),
    ("", "pods/log", "get"),
}


def ui_objects(manifests: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for manifest in filter(is_ui, manifests):
        assert manifest["metadata"]["name"] == "noetl-operator-ui"
        found.setdefault(manifest["kind"], []).append(manifest)
    return found


def test_no_ui_by_default(renders: dict[str, list[dict[str, Any]]]) -> None:
    assert not ui_objects(renders["default"])


@needs_helm
def test_ui_is_read_only_locked_down_and_reached_by_port_forward() -> None:
    manifests = render_chart({"ui": {"enabled": True}})
    helm("lint", "--strict", str(CHART), values={"ui": {"enabled": True}})
    ui = ui_objects(manifests)
    assert sorted(ui) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    assert triples(ui["ClusterRole"][0]) == UI_READ_RULES
    assert ui["ClusterRoleBinding"][0]["subjects"][0]["name"] == "noetl-operator-ui"
    deployment = ui["Deployment"][0]
    pod = deployment["spec"]["template"]["spec"]
    (ui_container,) = pod["containers"]
    assert pod["serviceAccountName"] == "noetl-operator-ui"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert ui_container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert ui_container["command"] == ["python3", "-m", "noetl", "ui"]  # Debian names it python3
    command = app.get_command(app.make_context("noetl", ["ui"]), "ui")
    assert command is not None
    params = command.make_context("ui", list(ui_container["args"])).params
    assert params["actions"] is False
    assert params["host"] == "0.0.0.0"
    assert ui["Service"][0]["spec"]["type"] == "ClusterIP"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    operator_selector = only(
        [m for m in manifests if m["metadata"]["name"] == "noetl-operator"], "Deployment"
    )["spec"]["selector"]["matchLabels"]
    assert not operator_selector.items() <= labels.items(), "the operator's selector matches the UI"


def test_ui_actions_add_only_patching_and_creating_executions_in_watched_namespaces(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    ui = ui_objects(renders["namespaced"])
    assert "ClusterRole" not in ui
    assert sorted(role["metadata"]["namespace"] for role in ui["Role"]) == ["team-a", "team-b"]
    for role in ui["Role"]:
        assert triples(role) == UI_READ_RULES | {
            ("noetl.io", "executions", "patch"),
            ("noetl.io", "executions", "create"),
        }
    (ui_container,) = ui["Deployment"][0]["spec"]["template"]["spec"]["containers"]
    assert "--actions" in ui_container["args"]
    assert {"--namespace=team-a", "--namespace=team-b"} <= set(ui_container["args"])
    assert ui["Service"][0]["spec"]["ports"][0]["port"] == 9090


@needs_helm
def test_ui_actions_take_their_access_token_from_a_secret() -> None:
    values = {"ui": {"enabled": True, "actions": {"enabled": True, "tokenSecret": "ui-token"}}}
    (container,) = ui_objects(render_chart(values))["Deployment"][0]["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["env"] == [
        {
            "name": "NOETL_UI_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "ui-token", "key": "token"}},
        }
    ]
    command = app.get_command(app.make_context("noetl", ["ui"]), "ui")
    assert command is not None
    assert "NOETL_UI_TOKEN" in [param.envvar for param in command.params]
