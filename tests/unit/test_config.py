"""The operator's configuration: S3 profiles from Ramen's ConfigMap, our settings from our own."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from reconciler.config import CONFIG_KEY, P2P_CONFIG_KEY, ConfigError, parse_config

PROFILES = {"s3StoreProfiles": [{"s3ProfileName": "p", "s3Bucket": "b", "s3CompatibleEndpoint": "http://s3:9000",
                                 "s3Region": "r", "s3SecretRef": {"name": "s3-secret"}}]}


def ramen_cm(doc: dict[str, Any]) -> dict[str, Any]:
    return {"data": {CONFIG_KEY: yaml.safe_dump(doc)}}


def p2p_cm(doc: dict[str, Any]) -> dict[str, Any]:
    return {"data": {P2P_CONFIG_KEY: yaml.safe_dump(doc)}}


def test_settings_come_from_our_configmap_and_profiles_from_ramens() -> None:
    cfg = parse_config(ramen_cm(PROFILES), p2p_cm({"keyPrefix": "dr/", "hmacSecretRef": {"name": "h"}}), "ns")
    assert cfg.key_prefix == "dr/"
    assert cfg.hmac_secret is not None and (cfg.hmac_secret.name, cfg.hmac_secret.namespace) == ("h", "ns")
    assert cfg.profiles["p"].secret_ref.namespace == "ns"


def test_ramen_rewriting_its_configmap_leaves_our_settings_in_force() -> None:
    """Ramen's manager merges its defaults into its ConfigMap on start; our settings are elsewhere."""
    ours = p2p_cm({"keyPrefix": "dr/", "webhook": {"url": "https://hook.example.com"}})
    before = parse_config(ramen_cm(PROFILES), ours, "ns")
    rewritten = {**PROFILES, "apiVersion": "ramendr.openshift.io/v1alpha1", "kind": "RamenConfig",
                 "health": {"healthProbeBindAddress": ":8081"}, "leaderElection": {"leaderElect": True},
                 "ramenControllerType": "dr-cluster"}
    after = parse_config(ramen_cm(rewritten), ours, "ns")
    assert after == before


def test_an_empty_p2p_configmap_means_the_defaults() -> None:
    cfg = parse_config(ramen_cm(PROFILES), {"data": {P2P_CONFIG_KEY: ""}}, "ns")
    assert cfg.key_prefix == "" and cfg.hmac_secret is None and cfg.webhook is None


@pytest.mark.parametrize(("ramen", "ours", "message"), [
    ({**PROFILES, "p2p": {"keyPrefix": "a/"}}, {}, "move its content to ConfigMap ramen-p2p-operator-config"),
    (PROFILES, {"keyprefix": "a/"}, "unknown keys ['keyprefix']"),
    (PROFILES, {"keyPrefix": 3}, "keyPrefix must be a string"),
    (PROFILES, {"webhook": {"url": "ftp://x"}}, "webhook.url must be an http(s) URL"),
    ({"s3StoreProfiles": []}, {}, "s3StoreProfiles is empty"),
])
def test_invalid_configuration_is_refused_with_a_message(ramen: dict[str, Any], ours: dict[str, Any],
                                                         message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(ramen_cm(ramen), p2p_cm(ours), "ns")
    assert message in str(err.value)


def test_a_missing_key_names_the_configmap() -> None:
    with pytest.raises(ConfigError, match=r"ramen-p2p-operator-config has no key p2p\.yaml"):
        parse_config(ramen_cm(PROFILES), {"data": {}}, "ns")
