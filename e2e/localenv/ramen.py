"""Ramen's real manager in dr-cluster mode beside a local cluster: its CRDs, ConfigMap and process.

Ramen's manager reads (and rewrites) the ConfigMap `ramen-dr-cluster-operator-config` in
POD_NAMESPACE on start, so the settings several managers on one machine need (a loopback health
port, no metrics server, no leader election) and the S3 profile pointing at the local S3 server
are written there before it starts. It stops at start-up unless every kind it watches has a CRD.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e.crdinstall import OUR_CRDS, install_crds, load_crds
from e2e.localenv import build
from e2e.localenv.procs import Component

NAMESPACE = "ramen-system"
PROFILE = "s3-profile-shared"
S3_SECRET = "s3-secret"
CONFIGMAP = "ramen-dr-cluster-operator-config"
CONFIG_KEY = "ramen_manager_config.yaml"


def crd_files(bins: build.Binaries) -> list[Path]:
    """Ours, then Ramen's own (but for the kinds ours define), the external ones, the NAD CRD and the
    MCS ServiceExport CRD (Ramen creates ServiceExports for VolSync destinations)."""
    ours = {d["metadata"]["name"] for d in load_crds(OUR_CRDS)}
    src = bins.ramen_source
    ramens = [f for f in sorted((src / "config" / "crd" / "bases").glob("*.yaml"))
              if not any(d["metadata"]["name"] in ours for d in load_crds([f]))]
    nad = src / "hack" / "test" / "network-attachment-definitions.k8s.cni.cncf.io.yaml"
    mcs = sorted((Path(__file__).resolve().parent / "crds").glob("*.yaml"))
    return [*OUR_CRDS, *ramens, *sorted(bins.ramen_crds.glob("*.yaml")), nad, *mcs]


def manager_component(name: str, bins: build.Binaries, kubeconfig: Path, log: Path, port: int) -> Component:
    return Component(
        name=f"{name}-ramen",
        argv=[str(bins.ramen_manager), f"--kubeconfig={kubeconfig}"],
        log=str(log),
        port=port,
        ready_url=f"http://127.0.0.1:{port}/readyz",
        env={"RAMEN_CONTROLLER_TYPE": "dr-cluster", "POD_NAMESPACE": NAMESPACE},
    )


def ramen_config(s3: dict[str, str], health_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "ramendr.openshift.io/v1alpha1",
        "kind": "RamenConfig",
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": "0"},
        "leaderElection": {"leaderElect": False},
        "s3StoreProfiles": [{
            "s3ProfileName": PROFILE,
            "s3Bucket": s3["bucket"],
            "s3CompatibleEndpoint": s3["endpoint"],
            "s3Region": s3["region"],
            "s3SecretRef": {"name": S3_SECRET, "namespace": NAMESPACE},
        }],
    }


def _put(create: Any, replace: Any, name: str, body: Any) -> None:
    try:
        create(NAMESPACE, body)
    except ApiException as e:
        if e.status != 409:
            raise
        replace(name, NAMESPACE, body)


def prepare(kubeconfig: Path, bins: build.Binaries, s3: dict[str, str], health_port: int) -> None:
    """CRDs, namespace, S3 Secret and ConfigMap: what Ramen's manager needs before it starts (idempotent)."""
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    try:
        install_crds(api, crd_files(bins), timeout=60)
        core = client.CoreV1Api(api)
        try:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
        except ApiException as e:
            if e.status != 409:
                raise
        secret = client.V1Secret(metadata=client.V1ObjectMeta(name=S3_SECRET, namespace=NAMESPACE), data={
            "AWS_ACCESS_KEY_ID": base64.b64encode(s3["accessKeyId"].encode()).decode(),
            "AWS_SECRET_ACCESS_KEY": base64.b64encode(s3["secretAccessKey"].encode()).decode()})
        _put(core.create_namespaced_secret, core.replace_namespaced_secret, S3_SECRET, secret)
        cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=CONFIGMAP, namespace=NAMESPACE),
                                data={CONFIG_KEY: yaml.safe_dump(ramen_config(s3, health_port))})
        _put(core.create_namespaced_config_map, core.replace_namespaced_config_map, CONFIGMAP, cm)
    finally:
        api.close()
