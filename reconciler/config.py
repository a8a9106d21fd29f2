"""The operator's configuration: Ramen's RamenConfig, read from a ConfigMap, plus our `p2p` block.

    apiVersion: ramendr.openshift.io/v1alpha1
    kind: RamenConfig
    s3StoreProfiles:                # Ramen's format, unchanged
    - s3ProfileName: s3-shared
      s3Bucket: ramen
      s3CompatibleEndpoint: https://s3.example.com
      s3Region: us-east-1
      s3SecretRef: {name: s3-secret, namespace: ramen-system}
    p2p:                            # ramen-p2p's own settings, all optional
      keyPrefix: ramen-p2p/         # where coordination keys live inside the bucket
      hmacSecretRef: {name: coordination-hmac}          # key `hmacKey`: signs every object we write
      webhook: {url: https://hooks.example.com/dr, secretRef: {name: dr-webhook}}  # key `hmacKey`
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.s3peer import S3PeerError, S3Profile, SecretRef, parse_ramen_config

CONFIGMAP_NAME = "ramen-dr-cluster-operator-config"
CONFIG_KEY = "ramen_manager_config.yaml"


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


def _ref(doc: Any, where: str, namespace: str) -> SecretRef:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("name"), str) or not doc["name"]:
        raise ConfigError(f"{where}: needs a name")
    return SecretRef(doc["name"], str(doc.get("namespace") or namespace))


def parse_config(configmap: Mapping[str, Any], namespace: str) -> OperatorConfig:
    """An OperatorConfig from the ConfigMap object; ConfigError names the problem."""
    data = configmap.get("data") or {}
    text = data.get(CONFIG_KEY)
    if not isinstance(text, str):
        raise ConfigError(f"ConfigMap {namespace}/{CONFIGMAP_NAME} has no key {CONFIG_KEY}")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{CONFIG_KEY} is not valid YAML: {e}") from e
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{CONFIG_KEY} must be a RamenConfig mapping")
    try:
        profiles = parse_ramen_config(doc)
    except S3PeerError as e:
        raise ConfigError(f"{CONFIG_KEY}: {e}") from e
    if not profiles:
        raise ConfigError(f"{CONFIG_KEY}: s3StoreProfiles is empty; at least the coordination profile is needed")
    # Ramen defaults a profile Secret's namespace to the operator's.
    profiles = {n: p if p.secret_ref.namespace else _with_namespace(p, namespace) for n, p in profiles.items()}
    p2p = doc.get("p2p") or {}
    if not isinstance(p2p, Mapping):
        raise ConfigError(f"{CONFIG_KEY}: p2p must be a mapping")
    prefix = p2p.get("keyPrefix", "")
    if not isinstance(prefix, str):
        raise ConfigError(f"{CONFIG_KEY}: p2p.keyPrefix must be a string")
    hmac = _ref(p2p["hmacSecretRef"], "p2p.hmacSecretRef", namespace) if "hmacSecretRef" in p2p else None
    webhook = None
    if "webhook" in p2p:
        wh = p2p["webhook"]
        if not isinstance(wh, Mapping) or not isinstance(wh.get("url"), str) or not wh["url"].startswith(
                ("http://", "https://")):
            raise ConfigError("p2p.webhook.url must be an http(s) URL")
        webhook = WebhookConfig(wh["url"], _ref(wh["secretRef"], "p2p.webhook.secretRef", namespace)
                                if "secretRef" in wh else None)
    return OperatorConfig(profiles=profiles, key_prefix=prefix, hmac_secret=hmac, webhook=webhook)


def _with_namespace(p: S3Profile, namespace: str) -> S3Profile:
    from dataclasses import replace

    return replace(p, secret_ref=replace(p.secret_ref, namespace=namespace))
