"""Key schema: seed section 3.2 keys under an optional prefix."""

from __future__ import annotations

import pytest

from reconciler.s3peer import AppKey, KeySchema

APP = AppKey("shop", "web")


def test_keys_without_prefix_match_the_seed_schema() -> None:
    k = KeySchema()
    assert k.dr_state(APP) == "shop/web/dr-state"
    assert k.dr_intent(APP, "east") == "shop/web/dr-intent/east"
    assert k.cluster_status(APP, "west") == "shop/web/cluster-status/west"
    assert k.storage_classes("east") == "cluster-info/east/storage-classes"
    assert k.health("east") == "cluster-info/east/health"
    assert k.digest("east") == "cluster-info/east/digest"


def test_ramen_metadata_keys() -> None:
    k = KeySchema()
    assert k.vrg_metadata(APP) == "shop/web/v1alpha1.VolumeReplicationGroup/a"
    assert k.pv_metadata(APP, "pv-1") == "shop/web/v1.PersistentVolume/pv-1"
    assert k.pvc_metadata(APP, "shop", "data") == "shop/web/v1.PersistentVolumeClaim/shop/data"


@pytest.mark.parametrize("prefix", ["p2p", "p2p/", "/p2p/", "p2p//"])
def test_prefix_is_normalised_to_one_trailing_slash(prefix: str) -> None:
    k = KeySchema(prefix)
    assert k.dr_state(APP) == "p2p/shop/web/dr-state"
    assert k.health("east") == "p2p/cluster-info/east/health"


def test_nested_prefix() -> None:
    assert KeySchema("a/b").digest("w") == "a/b/cluster-info/w/digest"


@pytest.mark.parametrize("bad", ["", "a/b", ".", ".."])
def test_segments_with_slashes_or_empty_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        AppKey(bad, "x")
    with pytest.raises(ValueError):
        KeySchema().health(bad)


def test_app_key_round_trips_through_text() -> None:
    assert AppKey.parse(str(APP)) == APP
    with pytest.raises(ValueError):
        AppKey.parse("no-slash")


def test_own_app_keys_are_intent_and_status() -> None:
    assert KeySchema().own_app_keys(APP, "east") == ["shop/web/dr-intent/east", "shop/web/cluster-status/east"]
