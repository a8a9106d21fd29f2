"""The local environment's build: which versions of the external CRDs Ramen's manager needs."""

from __future__ import annotations

import pytest

from e2e.localenv.build import RAMEN_CRD_MODULES, ramen_module_versions

GOMOD = """module github.com/ramendr/ramen

require github.com/backube/volsync v0.11.0

require (
\tgithub.com/csi-addons/kubernetes-csi-addons v0.14.1-0.20260528060322-2ed0ef956bd4
\tgithub.com/kubernetes-csi/external-snapshotter/client/v8 v8.6.0
\tgithub.com/red-hat-storage/external-snapshotter/client/v8 v8.2.1-0.20250602100552-7549f3bd7096
)
"""


def test_the_crd_versions_are_the_ones_ramens_go_mod_requires() -> None:
    assert ramen_module_versions(GOMOD) == {
        "github.com/backube/volsync": "v0.11.0",
        "github.com/csi-addons/kubernetes-csi-addons": "v0.14.1-0.20260528060322-2ed0ef956bd4",
        "github.com/kubernetes-csi/external-snapshotter/client/v8": "v8.6.0",
    }
    assert set(RAMEN_CRD_MODULES) == set(ramen_module_versions(GOMOD))


def test_a_go_mod_without_one_of_them_is_refused() -> None:
    with pytest.raises(SystemExit, match="volsync"):
        ramen_module_versions(GOMOD.replace("require github.com/backube/volsync v0.11.0", ""))
