"""`ramenctl migrate`: from Ramen's hub objects to the per-cluster objects of ramen-p2p.

Input is what the hub holds: DRPlacementControls, DRPolicies, DRClusters and OCM PlacementDecisions,
from a directory of exported YAML (`kubectl get -o yaml`, one or many documents per file, `kind: List`
too) or read from the hub with --hub-kubeconfig. Output, for each DR cluster: the DRPolicy, both
DRClusters and one DRControl per DRPlacementControl, identical on both clusters. A DRControl takes
the DRPC's namespace and name, which are its VRG's on the managed clusters, so the S3 keys Ramen's
VRG controller wrote stay where they are. preferredCluster is
the cluster the app runs on now (the PlacementDecision, else the DRPC's status.preferredDecision),
because the first cluster to claim generation 1 becomes Primary. What has no equivalent is listed in
the report with the reason. Nothing is applied without --apply.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml
from kubernetes.client.rest import ApiException

from reconciler.api import DRCluster, DRControl, DRPolicy, ModelError
from reconciler.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    GROUP,
    KUBE_TIMEOUT,
    VERSION,
    CLIError,
    Kube,
    add_kube_args,
    connect_kubes,
    kube_client,
    kube_error,
)

OCM_GROUP, OCM_VERSION = "cluster.open-cluster-management.io", "v1beta1"
PLACEMENT_LABEL = "cluster.open-cluster-management.io/placement"

EPILOG = """\
examples:
  # on the hub: export, then look at what would be created and what cannot be carried over
  for k in drplacementcontrols drpolicies drclusters placementdecisions; do
    kubectl get $k -A -o yaml > hub/$k.yaml; done
  ramenctl migrate --from hub/
  ramenctl migrate --from hub/ --output-dir out/          # out/east.yaml, out/west.yaml
  ramenctl migrate --hub-kubeconfig hub.kubeconfig --apply --kubeconfig-east e.kc --kubeconfig-west w.kc

exit codes: 0 generated (or applied), 1 an object could not be applied, 2 unusable input
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("migrate", help="generate per-cluster DRPolicy, DRClusters and DRControls from Ramen's hub",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="source", type=Path, metavar="DIR", help="directory of exported hub YAML")
    src.add_argument("--hub-kubeconfig", type=Path, help="read the hub objects from the hub itself")
    p.add_argument("--output-dir", type=Path, help="write CLUSTER.yaml per cluster here instead of printing")
    p.add_argument("--apply", action="store_true",
                   help="create the objects on the clusters given by kubeconfig (default: dry run, print only)")
    p.add_argument("--coordination-profile", help="S3 profile for coordination (default: the DRClusters' profile)")
    add_kube_args(p)


# -- input ---------------------------------------------------------------------------
@dataclass
class HubObjects:
    drpcs: list[dict[str, Any]] = field(default_factory=list)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def add(self, doc: Any, where: str) -> None:
        if not isinstance(doc, Mapping):
            return
        kind = doc.get("kind")
        if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and "items" in doc):
            for item in doc.get("items") or []:
                # `kubectl get` lists carry the item kind only at the top; restore it.
                if isinstance(item, dict) and "kind" not in item and kind != "List":
                    item = {**item, "kind": kind[:-4]}
                self.add(item, where)
            return
        name = (doc.get("metadata") or {}).get("name")
        if kind == "DRPlacementControl":
            self.drpcs.append(dict(doc))
        elif kind == "DRPolicy" and name:
            self.policies[name] = dict(doc)
        elif kind == "DRCluster" and name:
            self.clusters[name] = dict(doc)
        elif kind == "PlacementDecision":
            self.decisions.append(dict(doc))
        else:
            self.ignored.append(f"{where}: {kind} {name}")


def read_dir(path: Path) -> HubObjects:
    if not path.is_dir():
        raise CLIError(f"--from: not a directory: {path}")
    hub = HubObjects()
    files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
    if not files:
        raise CLIError(f"--from: no .yaml, .yml or .json files in {path}")
    for f in files:
        try:
            for doc in yaml.safe_load_all(f.read_text()):
                hub.add(doc, f.name)
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
            raise CLIError(f"{f}: not YAML: {' '.join(str(e).split())}") from None
    return hub


def read_hub(kube: Kube) -> HubObjects:
    hub = HubObjects()
    try:
        c = kube.custom
        for item in c.list_cluster_custom_object(GROUP, VERSION, "drplacementcontrols",
                                                 _request_timeout=KUBE_TIMEOUT)["items"]:
            hub.add({**item, "kind": "DRPlacementControl"}, "hub")
        for plural, kind in (("drpolicies", "DRPolicy"), ("drclusters", "DRCluster")):
            for item in c.list_cluster_custom_object(GROUP, VERSION, plural, _request_timeout=KUBE_TIMEOUT)["items"]:
                hub.add({**item, "kind": kind}, "hub")
    except ApiException as e:
        raise CLIError(f"reading Ramen's objects from the hub: {kube_error(e)}", EXIT_FAILED) from None
    except Exception as e:  # an unreachable hub is a one-line error
        raise CLIError(f"reading the hub: {kube_error(e)}", EXIT_FAILED) from None
    try:
        for item in kube.custom.list_cluster_custom_object(OCM_GROUP, OCM_VERSION, "placementdecisions",
                                                           _request_timeout=KUBE_TIMEOUT)["items"]:
            hub.add({**item, "kind": "PlacementDecision"}, "hub")
    except ApiException as e:
        if e.status != 404:  # no OCM placement API: decisions come from the DRPCs' status
            raise CLIError(f"reading PlacementDecisions from the hub: {kube_error(e)}", EXIT_FAILED) from None
    return hub


# -- conversion ------------------------------------------------------------------------
@dataclass
class Result:
    per_cluster: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # fields not carried over, and why
    notes: list[str] = field(default_factory=list)  # carried over, but to check
    skipped: list[str] = field(default_factory=list)  # inputs that produced nothing


def _meta(doc: Mapping[str, Any]) -> tuple[str, str]:
    m = doc.get("metadata") or {}
    return str(m.get("namespace") or ""), str(m.get("name") or "")


def current_cluster(drpc: Mapping[str, Any], decisions: Iterable[Mapping[str, Any]]) -> tuple[str | None, str]:
    """Where the app runs now, and the evidence: the PlacementDecision of its placement, else the DRPC status."""
    ref = (drpc.get("spec") or {}).get("placementRef") or {}
    ns = ref.get("namespace") or _meta(drpc)[0]
    for d in decisions:
        labels = (d.get("metadata") or {}).get("labels") or {}
        if labels.get(PLACEMENT_LABEL) == ref.get("name") and _meta(d)[0] == ns:
            names = [x.get("clusterName") for x in (d.get("status") or {}).get("decisions") or []
                     if isinstance(x, Mapping) and x.get("clusterName")]
            if names:
                return str(names[0]), f"PlacementDecision {ns}/{_meta(d)[1]}"
    pd = ((drpc.get("status") or {}).get("preferredDecision") or {}).get("clusterName")
    if pd:
        return str(pd), "DRPC status.preferredDecision"
    return None, ""


def _copy_selector(sel: Any) -> dict[str, Any]:
    return {k: v for k, v in (sel or {}).items() if k in ("matchLabels", "matchExpressions")}


def convert(hub: HubObjects, coordination_profile: str | None = None) -> Result:
    r = Result()
    policies_out: dict[str, tuple[dict[str, Any], list[str], list[str]]] = {}
    for pname, pol in sorted(hub.policies.items()):
        spec = pol.get("spec") or {}
        clusters = [str(c) for c in spec.get("drClusters") or []]
        where = f"DRPolicy {pname}"
        if len(clusters) != 2:
            r.skipped.append(f"{where}: {len(clusters)} clusters; ramen-p2p pairs exactly two")
            continue
        missing = [c for c in clusters if c not in hub.clusters]
        if missing:
            r.skipped.append(f"{where}: DRCluster {', '.join(missing)} not in the input")
            continue
        profiles = [str((hub.clusters[c].get("spec") or {}).get("s3ProfileName")) for c in clusters]
        coord = coordination_profile or profiles[0]
        if len(set(profiles)) > 1 and not coordination_profile:
            r.notes.append(f"{where}: the DRClusters use different S3 profiles ({', '.join(profiles)}); both "
                           f"clusters must coordinate through one bucket: s3CoordinationProfile is {coord}, "
                           "check that both clusters' RamenConfig has it (or pass --coordination-profile)")
        out_spec: dict[str, Any] = {"drClusters": clusters, "schedulingInterval": spec.get("schedulingInterval", ""),
                                    "s3CoordinationProfile": coord, "autoFailover": {"enabled": False}}
        for k in ("replicationClassSelector", "volumeSnapshotClassSelector"):
            if k in spec:
                out_spec[k] = _copy_selector(spec[k])
        for k, why in (("volumeGroupSnapshotClassSelector", "consistency groups are not supported"),
                       ("networkMappingRef", "no IP translation between sites")):
            if spec.get(k):
                r.dropped.append(f"{where}: spec.{k} is not carried over ({why})")
        policies_out[pname] = ({"apiVersion": f"{GROUP}/{VERSION}", "kind": "DRPolicy",
                                "metadata": {"name": pname}, "spec": out_spec}, clusters, profiles)

    docs: dict[str, list[dict[str, Any]]] = {}
    for pname, (pol_doc, clusters, _) in policies_out.items():
        for c in clusters:
            docs.setdefault(c, []).append(pol_doc)
            for dc in clusters:
                if any(d["kind"] == "DRCluster" and d["metadata"]["name"] == dc for d in docs[c]):
                    continue
                src = hub.clusters[dc].get("spec") or {}
                dspec: dict[str, Any] = {"clusterName": dc, "s3ProfileName": src.get("s3ProfileName")}
                for k in ("region", "cidrs", "clusterFence"):
                    if src.get(k) not in (None, "", []):
                        dspec[k] = src[k]
                docs[c].append({"apiVersion": f"{GROUP}/{VERSION}", "kind": "DRCluster", "metadata": {"name": dc},
                                "spec": dspec})
        if not any(((d.get("spec") or {}).get("drPolicyRef") or {}).get("name") == pname for d in hub.drpcs):
            r.notes.append(f"DRPolicy {pname}: no DRPlacementControl uses it")

    for drpc in sorted(hub.drpcs, key=_meta):
        ns, name = _meta(drpc)
        where = f"DRPlacementControl {ns}/{name}"
        spec = drpc.get("spec") or {}
        policy_name = (spec.get("drPolicyRef") or {}).get("name")
        if policy_name not in policies_out:
            r.skipped.append(f"{where}: its DRPolicy {policy_name!r} was not converted")
            continue
        if spec.get("protectedNamespaces"):
            # Ramen keeps a discovered app's VRG in its ops namespace, protecting other namespaces:
            # a DRControl protects PVCs of its own namespace only, so converting it would protect nothing.
            r.skipped.append(f"{where}: protects namespaces {', '.join(spec['protectedNamespaces'])} (a discovered "
                             "app); ramen-p2p protects the PVCs of the DRControl's own namespace only")
            continue
        pol_doc, clusters, profiles = policies_out[policy_name]
        here, evidence = current_cluster(drpc, hub.decisions)
        if here is None:
            here = str(spec.get("preferredCluster") or "") or None
            evidence = "spec.preferredCluster (no placement decision found: check where the app runs)"
            r.notes.append(f"{where}: no PlacementDecision and no status.preferredDecision; preferredCluster "
                           f"{here!r} is taken from the spec")
        if here not in clusters:
            r.skipped.append(f"{where}: runs on {here!r}, which is not a cluster of DRPolicy {policy_name}")
            continue
        vrg: dict[str, Any] = {
            "replicationType": "async" if pol_doc["spec"]["schedulingInterval"] else "sync",
            "pvcSelector": _copy_selector(spec.get("pvcSelector")),
            "s3Profiles": list(dict.fromkeys(profiles)),
        }
        if spec.get("kubeObjectProtection"):
            vrg["kubeObjectProtection"] = spec["kubeObjectProtection"]
        vs = spec.get("volSyncSpec")
        if isinstance(vs, Mapping) and vs:
            vrg["volSync"] = {k: v for k, v in vs.items() if k in ("disabled", "moverConfig")}
        else:
            r.notes.append(f"{where}: the hub chose VolSync or volume replication per PVC from the storage classes; "
                           "the DRControl uses volume replication unless vrgSpec.volSync.disabled is set to false")
        control = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DRControl", "metadata": {"name": name, "namespace": ns},
                   "spec": {"drPolicyRef": {"name": policy_name}, "preferredCluster": here, "vrgSpec": vrg}}
        if here != spec.get("preferredCluster"):
            r.notes.append(f"{where}: preferredCluster is {here} (from {evidence}), not the DRPC's "
                           f"{spec.get('preferredCluster')!r}: the cluster running the app must make the first claim")
        phase = (drpc.get("status") or {}).get("phase")
        if spec.get("action") and phase not in ("FailedOver", "Relocated", "Deployed"):
            r.dropped.append(f"{where}: action {spec['action']} is in phase {phase!r}: finish it on the hub first; "
                           "the action is not carried over")
        for k, why in (("dryRun", "test failover is not supported"),
                       ("retainNamespaceSCCAcrossPeers", "SCC annotations are not carried between clusters"),
                       ("failoverCluster", "set spec.targetCluster on the DRControl when failing over")):
            if spec.get(k):
                r.dropped.append(f"{where}: spec.{k} is not carried over ({why})")
        if spec.get("placementRef"):
            r.dropped.append(f"{where}: placementRef {spec['placementRef'].get('kind')}/"
                           f"{spec['placementRef'].get('name')} has no equivalent: gate the app's deployment on "
                           "the DRControl's ReadyForApplication condition (docs/integrations.md)")
        for c in clusters:
            docs[c].append(control)
    for c, items in docs.items():
        for d in items:
            _validate(d)
        r.per_cluster[c] = items
    for ig in hub.ignored:
        r.skipped.append(f"{ig}: not a kind migrate reads")
    return r


def _validate(doc: dict[str, Any]) -> None:
    """Through the same typed models the operator parses with, so nothing invalid is emitted."""
    parse: Callable[[Any], object] = {"DRPolicy": DRPolicy.from_dict, "DRCluster": DRCluster.from_dict,
                                      "DRControl": DRControl.from_dict}[doc["kind"]]
    try:
        parse(doc)
    except ModelError as e:
        raise CLIError(f"{doc['kind']} {doc['metadata']['name']} would be invalid: {e}", EXIT_FAILED) from None


# -- output and apply --------------------------------------------------------------------
def report_lines(r: Result) -> list[str]:
    lines = ["# ramenctl migrate report"]
    for c, items in r.per_cluster.items():
        kinds: dict[str, int] = {}
        for d in items:
            kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
        lines.append(f"#   {c}: " + ", ".join(f"{n} {k}" for k, n in kinds.items()))
    lines += [f"#   not carried over: {n}" for n in r.dropped]
    lines += [f"#   check: {n}" for n in r.notes]
    lines += [f"#   skipped: {s}" for s in r.skipped]
    return lines


def _plural(kind: str) -> str:
    return {"DRPolicy": "drpolicies", "DRCluster": "drclusters", "DRControl": "drcontrols"}[kind]


def apply(r: Result, kubes: Mapping[str, Kube], out: TextIO) -> int:
    failed = 0
    for c, items in r.per_cluster.items():
        kube = kubes.get(c)
        if kube is None:
            print(f"{c}: not applied (no kubeconfig given)", file=out)
            failed += 1
            continue
        for d in items:
            ns, name = _meta(d)
            what = f"{c}: {d['kind']} {ns + '/' if ns else ''}{name}"
            try:
                if ns:
                    kube.custom.create_namespaced_custom_object(GROUP, VERSION, ns, _plural(d["kind"]), d,
                                                                _request_timeout=KUBE_TIMEOUT)
                else:
                    kube.custom.create_cluster_custom_object(GROUP, VERSION, _plural(d["kind"]), d,
                                                             _request_timeout=KUBE_TIMEOUT)
                print(f"{what} created", file=out)
            except ApiException as e:
                if e.status == 409:
                    print(f"{what} exists, left as it is", file=out)
                    continue
                print(f"{what} FAILED: {kube_error(e)}", file=out)
                failed += 1
            except Exception as e:  # an unreachable cluster fails its objects, not the run
                print(f"{what} FAILED: {kube_error(e)}", file=out)
                failed += 1
    return EXIT_FAILED if failed else EXIT_OK


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    kubes = {k.name: k for k in connect_kubes(args)}
    if args.apply and not kubes:
        raise CLIError("--apply needs the kubeconfigs of the DR clusters (--kubeconfig-CLUSTER PATH)")
    if args.hub_kubeconfig is not None:
        if not args.hub_kubeconfig.is_file():
            raise CLIError(f"--hub-kubeconfig: no such file {args.hub_kubeconfig}")
        hub = read_hub(kube_client("hub", args.hub_kubeconfig))
    else:
        hub = read_dir(args.source)
    if not hub.drpcs and not hub.policies:
        raise CLIError("no DRPlacementControl or DRPolicy in the input")
    r = convert(hub, args.coordination_profile)
    report = report_lines(r)
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        for c, items in r.per_cluster.items():
            (args.output_dir / f"{c}.yaml").write_text(yaml.safe_dump_all(items, sort_keys=False))
            print(f"wrote {args.output_dir / (c + '.yaml')}", file=out)
    elif not args.apply:
        for c, items in r.per_cluster.items():
            print(f"# ---- cluster {c}: apply with kubectl --kubeconfig <{c}> apply -f -", file=out)
            print(yaml.safe_dump_all(items, sort_keys=False, explicit_start=True).rstrip(), file=out)
    print("\n".join(report), file=out)
    if not args.apply:
        print("# dry run: nothing applied (--apply creates these objects)", file=out)
        return EXIT_OK
    return apply(r, kubes, out)
