"""The install bundle: `render_install` and `ramenctl render`, without a cluster."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.cli import main as cli_main
from reconciler.config import CONFIG_KEY, CONFIGMAP_NAME, P2P_CONFIG_KEY, P2P_CONFIGMAP_NAME, parse_config
from reconciler.install import (
    Credentials,
    InstallError,
    InstallOptions,
    documents,
    objects_of_kind,
    render_crds,
    render_install,
)
from reconciler.operator import build_parser as operator_parser

ROOT = Path(__file__).resolve().parents[2]
OPTS = InstallOptions(cluster_name="east", peer="west", s3_endpoint="https://s3.example.com:9000",
                      s3_bucket="dr-bucket", with_policy=True, hmac_secret_name="coordination-hmac",
                      cidrs=("10.10.0.0/16",), peer_cidrs=("10.20.0.0/16",), replicas=2)
KINDS = ("Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
         "RoleBinding", "ConfigMap", "DRCluster", "DRPolicy", "Deployment", "Service")


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return documents(render_install(OPTS))


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = objects_of_kind(docs, kind)
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return dict(found[0])


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    c: dict[str, Any] = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return c


def test_bundle_parses_and_contains_each_kind(docs: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in docs}
    assert set(KINDS) <= kinds
    assert len(objects_of_kind(docs, "CustomResourceDefinition")) == len(list((ROOT / "crds").glob("*.yaml")))
    assert {d["metadata"]["name"] for d in objects_of_kind(docs, "DRCluster")} == {"east", "west"}
    assert "Secret" not in kinds
    for d in docs:
        assert d.get("apiVersion") and d.get("metadata", {}).get("name"), d


def test_namespaced_objects_are_in_the_operator_namespace() -> None:
    docs = documents(render_install(InstallOptions("east", "west", "http://s3:9000", namespace="dr-ops")))
    for kind in ("ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"):
        assert one(docs, kind)["metadata"]["namespace"] == "dr-ops"
    assert {cm["metadata"]["namespace"] for cm in objects_of_kind(docs, "ConfigMap")} == {"dr-ops"}
    assert one(docs, "Namespace")["metadata"]["name"] == "dr-ops"
    assert one(docs, "ClusterRoleBinding")["subjects"][0]["namespace"] == "dr-ops"


def test_deployment_runs_non_root_read_only_without_capabilities(docs: list[dict[str, Any]]) -> None:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(docs)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]


def test_deployment_probes_resources_and_replicas(docs: list[dict[str, Any]]) -> None:
    c = container(docs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    assert ports == {"metrics": 8080, "probes": 8081}
    for k in ("requests", "limits"):
        assert set(c["resources"][k]) == {"cpu", "memory"}
    assert one(docs, "Deployment")["spec"]["replicas"] == 2
    svc = one(docs, "Service")
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    assert svc["spec"]["selector"].items() <= one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()


def test_deployment_args_are_accepted_by_the_operator(docs: list[dict[str, Any]]) -> None:
    args = container(docs)["args"]
    parsed = operator_parser().parse_args(args)
    assert parsed.cluster_name == "east"
    assert parsed.namespace == "ramen-system"
    assert parsed.leader_elect is True
    # The pod IP only, not every interface; the kubelet expands $(POD_IP) from the downward API.
    assert parsed.metrics_bind_address == "$(POD_IP):8080"
    assert parsed.health_probe_bind_address == "$(POD_IP):8081"
    env = {e["name"]: e for e in container(docs)["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert parsed.kubeconfig is None  # in-cluster configuration


def configmap(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (cm,) = [d for d in objects_of_kind(docs, "ConfigMap") if d["metadata"]["name"] == name]
    return dict(cm)


def test_configmaps_hold_a_ramenconfig_and_p2p_settings_the_operator_accepts(docs: list[dict[str, Any]]) -> None:
    cm = configmap(docs, CONFIGMAP_NAME)
    p2p = configmap(docs, P2P_CONFIGMAP_NAME)
    config = parse_config(cm, p2p, "ramen-system")
    profile = config.profiles["s3-profile-shared"]
    raw = yaml.safe_load(cm["data"][CONFIG_KEY])["s3StoreProfiles"][0]
    assert raw["s3CompatibleEndpoint"] == "https://s3.example.com:9000"
    assert raw["s3Bucket"] == "dr-bucket"
    assert profile.secret_ref.name == "s3-secret"
    assert config.hmac_secret is not None and config.hmac_secret.name == "coordination-hmac"


def test_ramens_configmap_carries_nothing_ramens_manager_would_drop(docs: list[dict[str, Any]]) -> None:
    """Ramen's manager rewrites its ConfigMap on start, keeping only RamenConfig fields."""
    raw = yaml.safe_load(configmap(docs, CONFIGMAP_NAME)["data"][CONFIG_KEY])
    assert set(raw) == {"apiVersion", "kind", "s3StoreProfiles"}
    assert yaml.safe_load(configmap(docs, P2P_CONFIGMAP_NAME)["data"][P2P_CONFIG_KEY])["hmacSecretRef"] == {
        "name": "coordination-hmac", "namespace": "ramen-system"}


def test_drclusters_and_policy(docs: list[dict[str, Any]]) -> None:
    by_name = {d["metadata"]["name"]: d["spec"] for d in objects_of_kind(docs, "DRCluster")}
    assert by_name["east"]["cidrs"] == ["10.10.0.0/16"] and by_name["west"]["cidrs"] == ["10.20.0.0/16"]
    assert {s["s3ProfileName"] for s in by_name.values()} == {"s3-profile-shared"}
    pol = one(docs, "DRPolicy")
    assert pol["spec"]["drClusters"] == ["east", "west"]
    assert pol["spec"]["schedulingInterval"] == "5m"
    # The peer renders the same policy, so applying both bundles never fights over immutable fields.
    peer = documents(render_install(InstallOptions("west", "east", OPTS.s3_endpoint, with_policy=True)))
    assert one(peer, "DRPolicy")["metadata"]["name"] == pol["metadata"]["name"]
    assert one(peer, "DRPolicy")["spec"] == pol["spec"]


def test_policy_and_crds_are_optional() -> None:
    docs = documents(render_install(InstallOptions("east", "west", "http://s3:9000", include_crds=False)))
    kinds = {d["kind"] for d in docs}
    assert "DRPolicy" not in kinds and "CustomResourceDefinition" not in kinds


def test_secret_is_only_an_instruction_without_credentials_from_env() -> None:
    text = render_install(OPTS)
    assert "kubectl -n ramen-system create secret generic s3-secret" in text
    assert "--from-literal=AWS_ACCESS_KEY_ID=..." in text


def test_secret_from_env_holds_the_keys() -> None:
    opts = InstallOptions("east", "west", "http://s3:9000", credentials=Credentials("AKIDEXAMPLE", "s3cr3t/key+"))
    secret = one(documents(render_install(opts)), "Secret")
    assert base64.b64decode(secret["data"]["AWS_ACCESS_KEY_ID"]).decode() == "AKIDEXAMPLE"
    assert base64.b64decode(secret["data"]["AWS_SECRET_ACCESS_KEY"]).decode() == "s3cr3t/key+"
    assert "s3cr3t" not in repr(opts)


def test_crds_come_from_the_crds_directory() -> None:
    names = {d["metadata"]["name"] for d in documents(render_crds())}
    expected = {yaml.safe_load(p.read_text())["metadata"]["name"] for p in (ROOT / "crds").glob("*.yaml")}
    assert names == expected


@pytest.mark.parametrize(("field", "value", "message"), [
    ("cluster_name", "East_1", "--cluster-name 'East_1': must be a DNS-1123 label"),
    ("peer", "east", "--peer 'east': must differ from --cluster-name"),
    ("s3_endpoint", "s3.example.com", "--s3-endpoint 's3.example.com': must be an http:// or https:// URL"),
    ("s3_endpoint", "ftp://s3.example.com", "must be an http:// or https:// URL"),
    ("s3_bucket", "Bad_Bucket", "--s3-bucket 'Bad_Bucket': must be an S3 bucket name"),
    ("namespace", "ramen system", "--namespace 'ramen system': must be a DNS-1123 label"),
    ("s3_secret_name", "S3", "--s3-secret-name 'S3': must be a DNS-1123 subdomain"),
    ("schedule_interval", "5 minutes", "--schedule-interval '5 minutes'"),
    ("replicas", 0, "--replicas 0"),
    ("image", "", "--image ''"),
    ("cidrs", ("10.0.0.0",), "--cidrs '10.0.0.0': must be a CIDR"),
    ("peer_poll_interval", "soon", "--peer-poll-interval 'soon'"),
])
def test_bad_input_is_a_clear_error(field: str, value: object, message: str) -> None:
    opts = InstallOptions(**{**OPTS.__dict__, field: value})
    with pytest.raises(InstallError) as err:
        render_install(opts)
    assert message in str(err.value)


def test_no_value_can_inject_yaml() -> None:
    # Every template value is quoted: YAML syntax in a value stays part of one string.
    odd = 'p":[#{x'
    opts = InstallOptions("east", "west", "http://s3:9000", key_prefix=odd, s3_profile=odd, s3_region=odd)
    docs = documents(render_install(opts))
    assert {d["spec"]["s3ProfileName"] for d in objects_of_kind(docs, "DRCluster")} == {odd}
    config = yaml.safe_load(configmap(docs, CONFIGMAP_NAME)["data"][CONFIG_KEY])
    assert yaml.safe_load(configmap(docs, P2P_CONFIGMAP_NAME)["data"][P2P_CONFIG_KEY])["keyPrefix"] == odd
    assert config["s3StoreProfiles"][0]["s3Region"] == odd


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    try:
        code = cli_main.main(argv)
    except SystemExit as e:  # argparse usage errors
        code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()


BASE = ["render", "install", "--cluster-name", "east", "--peer", "west", "--s3-endpoint", "http://s3:9000"]


def test_cli_prints_the_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run_cli([*BASE, "--with-policy", "--no-crds", "--cidrs", "10.1.0.0/16,10.2.0.0/16"], monkeypatch)
    assert code == 0
    docs = documents(out)
    assert "CustomResourceDefinition" not in {d["kind"] for d in docs}
    east = next(d for d in objects_of_kind(docs, "DRCluster") if d["metadata"]["name"] == "east")
    assert east["spec"]["cidrs"] == ["10.1.0.0/16", "10.2.0.0/16"]
    assert len(objects_of_kind(docs, "DRPolicy")) == 1


def test_cli_bad_input_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run_cli([*BASE[:-1], "not-a-url"], monkeypatch)
    assert code == 2 and out == ""
    assert err.strip() == "ramenctl render install: --s3-endpoint 'not-a-url': must be an http:// or https:// URL " \
                          "with a host"


def test_cli_credentials_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hidden-value")
    code, out, err = run_cli([*BASE, "--s3-credentials-from-env"], monkeypatch)
    assert code == 2 and out == ""
    assert "AWS_ACCESS_KEY_ID not set" in err and "hidden-value" not in err
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    code, out, _ = run_cli([*BASE, "--s3-credentials-from-env"], monkeypatch)
    assert code == 0
    secret = one(documents(out), "Secret")
    assert base64.b64decode(secret["data"]["AWS_SECRET_ACCESS_KEY"]) == b"hidden-value"


def test_dockerfile_essentials() -> None:
    # No Docker engine here: check the image's contract instead of building it.
    text = (ROOT / "Dockerfile").read_text()
    final = text.split("\nFROM ")[-1]  # the last stage is the image that runs
    assert final.startswith("python:3.11-slim")
    user = re.findall(r"^USER\s+(\S+)", final, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert re.search(r'^ENTRYPOINT \["ramen-operator"\]$', final, re.M)
    assert "pip install" in final
    # The image's user matches the Deployment's runAsUser, so runAsNonRoot holds.
    pod = one(documents(render_install(OPTS)), "Deployment")["spec"]["template"]["spec"]
    assert user[-1].split(":")[0] == str(pod["securityContext"]["runAsUser"])
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore and "!reconciler/" in ignore


def test_peer_endpoint_is_rendered_with_read_access_to_its_secret() -> None:
    from reconciler.install import InstallOptions, documents, render_install

    opts = InstallOptions("east", "west", "https://s3.example.com", peer_api_server="https://api.west:6443",
                          peer_kubeconfig_secret="west-kubeconfig", include_crds=False)
    docs = documents(render_install(opts))
    west = next(d for d in docs if d["kind"] == "DRCluster" and d["metadata"]["name"] == "west")
    assert west["spec"]["peerEndpoint"] == {"apiServer": "https://api.west:6443",
                                            "secretRef": {"name": "west-kubeconfig", "namespace": "ramen-system"}}
    east = next(d for d in docs if d["kind"] == "DRCluster" and d["metadata"]["name"] == "east")
    assert "peerEndpoint" not in east["spec"]
    role = next(d for d in docs if d["kind"] == "Role")
    secret_rule = next(r for r in role["rules"] if r["resources"] == ["secrets"])
    assert "west-kubeconfig" in secret_rule["resourceNames"]


def test_peer_endpoint_needs_both_options_and_https() -> None:
    import pytest

    from reconciler.install import InstallError, InstallOptions, render_install

    with pytest.raises(InstallError, match="--peer-kubeconfig-secret"):
        render_install(InstallOptions("east", "west", "https://s3.example.com", peer_api_server="https://a:6443"))
    with pytest.raises(InstallError, match="https"):
        render_install(InstallOptions("east", "west", "https://s3.example.com", peer_api_server="http://a:6443",
                                      peer_kubeconfig_secret="k"))


def test_with_flux_adds_only_the_kustomization_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    def flux_rules(args: list[str]) -> list[dict[str, Any]]:
        code, out, _ = run_cli([*BASE, "--no-crds", *args], monkeypatch)
        assert code == 0
        role = next(d for d in documents(out) if d["kind"] == "ClusterRole" and "rules" in d
                    and any("drcontrols" in r["resources"] for r in d["rules"]))
        return [r for r in role["rules"] if "kustomize.toolkit.fluxcd.io" in r["apiGroups"]]

    assert flux_rules([]) == []
    assert flux_rules(["--with-flux"]) == [{"apiGroups": ["kustomize.toolkit.fluxcd.io"],
                                            "resources": ["kustomizations"],
                                            "verbs": ["get", "create", "patch", "delete"]}]
