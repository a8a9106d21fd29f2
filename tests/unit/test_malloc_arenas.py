"""The operator caps glibc's malloc arenas at start, unless MALLOC_ARENA_MAX says otherwise."""

from __future__ import annotations

import ctypes.util

import pytest

from reconciler.operator import limit_malloc_arenas

GLIBC = (ctypes.util.find_library("c") or "").startswith("libc.so")


@pytest.mark.skipif(not GLIBC, reason="no glibc here: the cap applies to glibc's malloc only")
def test_the_cap_is_set_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas(2) is True


def test_an_explicit_malloc_arena_max_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas(2) is False
