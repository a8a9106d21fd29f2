"""A DigestDecoder reuses entries whose JSON did not change: through any sequence of bodies, valid or
not, each parse must say exactly what a fresh parse of that body says."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.s3peer import CorruptObject, Digest
from reconciler.s3peer.models import DigestDecoder


def entry(gen: Any = 1, role: Any = "primary", status_hash: Any = "a" * 16) -> dict[str, Any]:
    return {"statusHash": status_hash, "role": role, "observedGeneration": gen}


# Values that compare equal to valid ones in Python (True == 1 == 1.0) but are not valid JSON types here.
generations = st.sampled_from([1, 2, True, 1.0, "1", None, -1])
roles = st.sampled_from(["primary", "secondary", "bogus", 1])
bodies = st.dictionaries(st.sampled_from(["ns/a", "ns/b", "ns/c", "bad-key"]),
                         st.builds(entry, generations, roles), max_size=4).map(lambda apps: {"apps": apps})


def fresh(body: dict[str, Any]) -> Digest | type[CorruptObject]:
    try:
        return DigestDecoder().parse(body)
    except CorruptObject:
        return CorruptObject


@settings(max_examples=300, deadline=None)
@given(st.lists(bodies, min_size=1, max_size=6))
def test_every_parse_says_what_a_fresh_parse_of_that_body_says(sequence: list[dict[str, Any]]) -> None:
    dec = DigestDecoder()
    for body in sequence:
        want = fresh(body)
        try:
            got: Digest | type[CorruptObject] = dec.parse(copy.deepcopy(body))
        except CorruptObject:
            got = CorruptObject
        assert got == want


def test_an_unchanged_entry_is_the_same_object_and_a_changed_one_is_new() -> None:
    dec = DigestDecoder()
    first = dec.parse({"apps": {"ns/a": entry(1), "ns/b": entry(1)}})
    second = dec.parse({"apps": {"ns/a": entry(1), "ns/b": entry(2)}})
    (a, b) = sorted(first.apps, key=str)
    assert second.apps[a] is first.apps[a]
    assert second.apps[b] is not first.apps[b] and second.apps[b].observed_generation == 2


def test_a_true_where_the_valid_entry_had_1_is_corrupt_not_the_old_entry() -> None:
    dec = DigestDecoder()
    dec.parse({"apps": {"ns/a": entry(1)}})
    with pytest.raises(CorruptObject):
        dec.parse({"apps": {"ns/a": entry(True)}})


def test_a_corrupt_body_leaves_what_was_parsed_before() -> None:
    dec = DigestDecoder()
    first = dec.parse({"apps": {"ns/a": entry(1)}})
    with pytest.raises(CorruptObject):
        dec.parse({"apps": {"ns/a": entry(1), "bad-key": entry(1)}})
    again = dec.parse({"apps": {"ns/a": entry(1)}})
    (a,) = first.apps
    assert again.apps[a] is first.apps[a]
