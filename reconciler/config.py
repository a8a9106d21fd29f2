"""The operator's configuration, from two ConfigMaps in its namespace.

Ramen's RamenConfig, in `ramen-dr-cluster-operator-config` (key `ramen_manager_config.yaml`),
gives the S3 profiles. Ramen's own manager rewrites that ConfigMap when it starts and drops
every key it does not know, so ramen-p2p's settings live in a ConfigMap of their own,
`ramen-p2p-operator-config` (key `p2p.yaml`), which nothing else writes:

    # ramen-dr-cluster-operator-config / ramen_manager_config.yaml  (Ramen's format, unchanged)
    apiVersion: ramendr.openshift.io/v1alpha1
    kind: RamenConfig
    s3StoreProfiles:
    - s3ProfileName: s3-shared
      s3Bucket: ramen
      s3CompatibleEndpoint: https://s3.example.com
      s3Region: us-east-1
      s3SecretRef: {name: s3-secret, namespace: ramen-system}

    # ramen-p2p-operator-config / p2p.yaml  (all optional, but the ConfigMap must exist)
    keyPrefix: ramen-p2p/         # where coordination keys live inside the bucket
    hmacSecretRef: {name: coordination-hmac}          # key `hmacKey`: signs every object we write
    webhook: {url: https://hooks.example.com/dr, secretRef: {name: dr-webhook}}  # key `hmacKey`
    volSyncSeedSecretRef: {name: volsync-seed}       # key `seed` (>= 32 bytes), the same on both
                                                     # clusters: each app's VolSync PSK is derived from it

The second ConfigMap is required: with it missing the operator would fall back to defaults
(another key prefix, no signing) and stop seeing its peer, so it refuses to start instead.
A `p2p` block still found in Ramen's ConfigMap (the earlier layout) is refused with a message
saying where it moved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.s3peer import S3PeerError, S3Profile, SecretRef, parse_ramen_config

CONFIGMAP_NAME = "ramen-dr-cluster-operator-config"
CONFIG_KEY = "ramen_manager_config.yaml"
P2P_CONFIGMAP_NAME = "ramen-p2p-operator-config"
P2P_CONFIG_KEY = "p2p.yaml"


# Our ConfigMap with nothing set (the defaults), for readers that may find none.
EMPTY_P2P_CONFIGMAP: dict[str, Any] = {"data": {P2P_CONFIG_KEY: "{}"}}


class ConfigError(ValueError):
    """The configuration cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: SecretRef | None = None


@dataclass(frozen=True)
class OperatorConfig:
    profiles: dict[str, S3Profile] = field(default_factory=dict)
    key_prefix: str = ""
    hmac_secret: SecretRef | None = None
    webhook: WebhookConfig | None = None
    volsync_seed: SecretRef | None = None


def _ref(doc: Any, where: str, namespace: str) -> SecretRef:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("name"), str) or not doc["name"]:
        raise ConfigError(f"{where}: needs a name")
    return SecretRef(doc["name"], str(doc.get("namespace") or namespace))


def _yaml_mapping(configmap: Mapping[str, Any], name: str, key: str, namespace: str) -> Mapping[str, Any]:
    text = (configmap.get("data") or {}).get(key)
    if not isinstance(text, str):
        raise ConfigError(f"ConfigMap {namespace}/{name} has no key {key}")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{name}/{key} is not valid YAML: {e}") from e
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{name}/{key} must be a mapping")
    return doc


def parse_config(configmap: Mapping[str, Any], p2p_configmap: Mapping[str, Any], namespace: str) -> OperatorConfig:
    """An OperatorConfig from Ramen's ConfigMap and ours; ConfigError names the problem."""
    doc = _yaml_mapping(configmap, CONFIGMAP_NAME, CONFIG_KEY, namespace)
    if "p2p" in doc:
        raise ConfigError(f"{CONFIGMAP_NAME}/{CONFIG_KEY} has a p2p block: move its content to ConfigMap "
                          f"{P2P_CONFIGMAP_NAME}, key {P2P_CONFIG_KEY} (Ramen's manager rewrites {CONFIGMAP_NAME} "
                          "and drops keys it does not know)")
    try:
        profiles = parse_ramen_config(doc)
    except S3PeerError as e:
        raise ConfigError(f"{CONFIG_KEY}: {e}") from e
    if not profiles:
        raise ConfigError(f"{CONFIG_KEY}: s3StoreProfiles is empty; at least the coordination profile is needed")
    # Ramen defaults a profile Secret's namespace to the operator's.
    profiles = {n: p if p.secret_ref.namespace else _with_namespace(p, namespace) for n, p in profiles.items()}
    p2p = _yaml_mapping(p2p_configmap, P2P_CONFIGMAP_NAME, P2P_CONFIG_KEY, namespace)
    where = f"{P2P_CONFIGMAP_NAME}/{P2P_CONFIG_KEY}"
    unknown = sorted(set(p2p) - {"keyPrefix", "hmacSecretRef", "webhook", "volSyncSeedSecretRef"})
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}")
    prefix = p2p.get("keyPrefix", "")
    if not isinstance(prefix, str):
        raise ConfigError(f"{where}: keyPrefix must be a string")
    hmac = _ref(p2p["hmacSecretRef"], f"{where}: hmacSecretRef", namespace) if "hmacSecretRef" in p2p else None
    webhook = None
    if "webhook" in p2p:
        wh = p2p["webhook"]
        if not isinstance(wh, Mapping) or not isinstance(wh.get("url"), str) or not wh["url"].startswith(
                ("http://", "https://")):
            raise ConfigError(f"{where}: webhook.url must be an http(s) URL")
        webhook = WebhookConfig(wh["url"], _ref(wh["secretRef"], f"{where}: webhook.secretRef", namespace)
                                if "secretRef" in wh else None)
    seed = _ref(p2p["volSyncSeedSecretRef"], f"{where}: volSyncSeedSecretRef", namespace) \
        if "volSyncSeedSecretRef" in p2p else None
    return OperatorConfig(profiles=profiles, key_prefix=prefix, hmac_secret=hmac, webhook=webhook,
                          volsync_seed=seed)


def _with_namespace(p: S3Profile, namespace: str) -> S3Profile:
    from dataclasses import replace

    return replace(p, secret_ref=replace(p.secret_ref, namespace=namespace))
