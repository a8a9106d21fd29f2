"""Hand-written schedules, one per defect the simulation has found: each is a replayable seed.

Each is a plain event list for `run_schedule`; `test_regressions.py` runs them and they must
come out clean. Against the code before each fix they fail with the invariant named here.
"""

from __future__ import annotations

from tests.sim.world import Event, Variant


def rounds(n: int = 3) -> list[Event]:
    """Fair rounds with no fault: both clusters publish, poll, reconcile and their VRGs act."""
    out: list[Event] = []
    for _ in range(n):
        for c in ("east", "west"):
            out += [("heartbeat", c), ("poll", c), ("reconcile", c), ("vrg", c), ("reconcile", c)]
        out.append(("tick", 2))
    return out


SCENARIOS: dict[str, tuple[Variant, list[Event], str]] = {
    # After the relocate source released, a Failover back to it must bump the generation,
    # not crash-loop on "already Primary".
    "take-back-after-release": (Variant(preferred="east"), [
        *rounds(), ("user", "east", "Relocate", "west"), ("user", "west", "Relocate", "west"),
        ("crash", "west"), ("reconcile", "east"), ("vrg", "east"), ("reconcile", "east"),
        ("user", "east", "Failover", "east"), ("reconcile", "east"), ("vrg", "east"), ("reconcile", "east"),
    ], "ReconcileError"),
    # The intent PUT lands, the digest PUT does not (kill -9 between them): after the restart
    # the intent must still reach the peer.
    "intent-without-digest": (Variant(preferred="east"), [
        *rounds(), ("arm", "west", 1, "before", "/digest"), ("user", "west", "Relocate", "west"),
        ("reconcile", "west"), ("restart", "west"), *rounds(4),
    ], "I4"),
    # Withdrawn relocate, killed between the intent DELETE and the digest PUT: the peer must
    # not carry it out.
    "withdrawn-intent-without-digest": (Variant(preferred="east"), [
        *rounds(), ("user", "west", "Relocate", "west"), ("reconcile", "west"), ("poll", "east"),
        ("user", "west", "", ""), ("arm", "west", 1, "after", "DELETE ns/app/dr-intent"), ("reconcile", "west"),
        ("tick", 10), ("poll", "east"), ("reconcile", "east"), ("vrg", "east"), ("reconcile", "east"),
        ("restart", "west"), *rounds(3),
    ], "Unasked"),
    # Demoted for generation 2, killed before the DRControl status recorded it, then the bucket
    # is restored to generation 1: the old Primary must not promote again.
    "rollback-after-unrecorded-demotion": (Variant(preferred="east"), [
        *rounds(), ("user", "west", "Failover", "west"), ("reconcile", "west"), ("vrg", "west"),
        ("reconcile", "west"), ("arm", "east", 1, "after", "PATCH VolumeReplicationGroup"), ("reconcile", "east"),
        ("rollback_drstate",), ("restart", "east"), ("reconcile", "east"), ("vrg", "east"), ("reconcile", "east"),
    ], "I1"),
    # The VRG informer lags behind a promotion: the relocate source must not release on the
    # stale view of a demoted VRG.
    "release-on-lagging-informer": (Variant(preferred="west"), [
        *rounds(), ("lag", "east", "on", "volumereplicationgroups"), ("user", "east", "Failover", "east"),
        ("reconcile", "east"), ("reconcile", "east"), ("vrg", "east"), ("reconcile", "east"),
        ("user", "east", "Relocate", "west"), ("user", "west", "Relocate", "west"),
        ("heartbeat", "west"), ("poll", "east"), ("reconcile", "east"), ("heartbeat", "east"), ("poll", "west"),
        ("reconcile", "west"), ("vrg", "west"), ("reconcile", "west"), ("reconcile", "west"),
    ], "I2"),
    # Killed after demoting the VRG and before the status write: ReadyForApplication must not
    # stay True beside a demoted VRG.
    "ready-outlives-role": (Variant(preferred="east"), [
        *rounds(), ("user", "west", "Failover", "west"), ("reconcile", "west"), ("reconcile", "west"),
        ("arm", "east", 1, "after", "PATCH VolumeReplicationGroup"), ("reconcile", "east"),
    ], "I5"),
    # Relocate asked on both, then the source's spec switched to Failover: neither may wait
    # for the other forever.
    "relocate-then-failover-conflict": (Variant(preferred="east"), [
        ("user", "west", "Relocate", "west"), ("user", "east", "Failover", "west"),
    ], "I4"),
    # Failover to itself asked on each cluster: the role moves at most once more, never back
    # and forth.
    "failover-both-ways": (Variant(preferred="west"), [
        ("reconcile", "west"), ("user", "west", "Failover", "west"), ("user", "east", "Failover", "east"),
    ], "I4"),
    # A cluster-status PUT answered with a timeout lands after a newer one: the stale copy must
    # not stand in for the newer report the relocate waits for.
    "late-cluster-status": (Variant(preferred="west"), [
        ("fault", "east", "late_next_write"), ("user", "west", "Relocate", "east"), ("reconcile", "east"),
        ("reconcile", "west"), ("vrg", "east"), ("reconcile", "east"), ("deliver",),
    ], "I4"),
    # A third party forges the Primary's own digest entry to say "released"; the Primary restarts
    # and must not demote for a relocate nobody asked for.
    "forged-own-release": (Variant(preferred="east"), [
        *rounds(), ("forge_release",), ("crash", "east"), ("restart", "east"), *rounds(2),
    ], "Unasked"),
    # The Primary claimed and was killed before its digest listed the app, while the peer removed
    # its protection: the leaver must not take dr-state with it (found by seed 448).
    "leave-beside-unpublished-primary": (Variant(preferred="west", volsync=True), [
        ("reconcile", "east"), ("delete", "east"), ("arm", "west", 1, "after", "PUT ns/app/cluster-status"),
        ("reconcile", "west"),
    ], "Orphaned"),
    # A third party puts an older copy of a cluster's digest back (without its intent): the
    # writer notices at its next heartbeat and publishes its own again (found by seed 1369).
    "own-digest-rolled-back": (Variant(preferred="west"), [
        ("reconcile", "west"), ("user", "west", "Failover", "east"), ("forge_release",), ("vrg", "west"),
        ("reconcile", "west"),
    ], "I4"),
    # The intent is rewritten (Relocate -> Failover) and the writer killed between the object
    # and the digest, then the action is made moot: the peer must not keep acting on the old
    # intent the digest still vouches for (found by seed 2520).
    "intent-rewrite-without-digest": (Variant(preferred="west", volsync=True, auto_failover=True), [
        ("user", "west", "Relocate", "east"), ("reconcile", "west"), ("reconcile", "east"),
        ("user", "west", "Failover", "east"), ("arm", "west", 3, "before"), ("reconcile", "west"),
        ("user", "west", "Failover", "west"),
    ], "I4"),
    # A cluster-status PUT lands and the writer is killed before the digest PUT; after the
    # restart the same content as the digest's is due again: the object must be checked, not
    # skipped, or the peer waits on a report it can never see (found by seed 2643).
    "status-object-behind-digest": (Variant(preferred="east", volsync=True, auto_failover=True), [
        ("reconcile", "east"), ("reconcile", "west"), ("vrg", "west"), ("reconcile", "west"),
        ("vrg_degrade", "west"), ("arm", "west", 1, "after", "PUT ns/app/cluster-status"), ("reconcile", "west"),
        ("user", "west", "Relocate", "west"), ("vrg", "west"),
    ], "I4"),
    # The Primary was killed after its intent, before its first cluster-status; a forged digest
    # then says it released: its VRG never reported Secondary, so no release may be published
    # (found by seed 18617; the digest entry had no status hash, which matched "not confirmed").
    "forged-release-before-first-status": (Variant(preferred="east"), [
        ("arm", "east", 1, "before", "PUT ns/app/cluster-status"), ("user", "east", "Relocate", "west"),
        ("reconcile", "west"), ("reconcile", "east"), ("tick", 40), ("forge_release",), ("restart", "east"),
        ("vrg", "west"), ("reconcile", "east"), ("reconcile", "west"),
    ], "I2"),
    # A cluster-status PUT is applied but answered with a timeout; the report then returns to
    # what the digest says: the object must be rewritten, not skipped (found by seed 17205).
    "timed-out-status-then-back": (Variant(preferred="east", auto_failover=True), [
        ("reconcile", "west"), ("reconcile", "east"), ("vrg", "west"), ("user", "west", "Relocate", "west"),
        ("arm", "east", 1, "after", "PATCH DRControl/status"), ("reconcile", "west"),
        ("fault", "west", "lose_next"), ("fault", "west", "timeout_next_write"), ("reconcile", "east"),
        ("vrg_degrade", "west"), ("reconcile", "west"), ("reconcile", "west"), ("vrg", "west"),
    ], "I4"),
    # The VRG informer lags behind a demotion; a Failover back to this cluster is asked: the
    # status must not grant ReadyForApplication on the stale view of a primary VRG (seed 30028).
    "ready-on-lagging-informer": (Variant(preferred="west"), [
        ("reconcile", "east"), ("vrg", "east"), ("reconcile", "west"), ("vrg", "west"),
        ("user", "west", "Relocate", "east"), ("reconcile", "east"), ("lag", "west", "on", "volumereplicationgroups"),
        ("tick", 10), ("reconcile", "west"), ("user", "west", "Failover", "west"), ("reconcile", "west"),
    ], "I5"),
    # A failover target killed before promoting is asked to relocate back: the final-sync flags
    # written with the demotion change the VRG spec, so the release must wait until the VRG
    # reports Secondary for that spec, not for the one before it (seed 33883).
    "release-before-vrg-reports-new-spec": (Variant(preferred="east", volsync=True), [
        *rounds(), ("arm", "west", 1, "before", "PATCH VolumeReplicationGroup"), ("user", "west", "Failover", "west"),
        ("reconcile", "west"), ("restart", "west"), ("poll", "east"), ("reconcile", "east"), ("vrg", "east"),
        ("reconcile", "east"), ("user", "west", "Relocate", "east"), ("user", "east", "Relocate", "east"),
        ("reconcile", "west"), ("poll", "east"), ("reconcile", "east"), ("vrg", "east"), ("reconcile", "east"),
    ], "I2"),
    # dr-state over three stores: one store is down while the claim is chosen on the other two,
    # then one of those is restored from a backup: the register must still settle once it is
    # repaired (seed 10355; the restore first modelled a backup from before the claim, which no
    # quorum of three outvotes while another store also missed the write).
    "quorum-store-down-then-restored": (Variant(preferred="west", quorum=True), [
        ("store", 1, "down"), ("reconcile", "west"), ("reconcile", "east"), ("rollback_drstate",),
        ("arm", "east", 6, "after"), ("reconcile", "east"), *rounds(2),
    ], "I4"),
    # The DRControl is deleted while the VRG informer lags behind the VRG's creation: the
    # deletion must not take the VRG for gone and give up dr-state under a primary VRG (seed 32179).
    "deletion-on-lagging-informer": (Variant(preferred="west", volsync=True), [
        ("lag", "west", "on", "volumereplicationgroups"), ("reconcile", "west"), ("delete", "west"),
        ("reconcile", "west"), ("user", "east", "Failover", "east"), *rounds(2),
    ], "DualPrimary"),
    # The peer claimed and was killed before its first cluster-status; a failover moved dr-state
    # to this cluster, which then leaves: the silent peer still protects, so dr-state must stay
    # (seed 34545; "dr-state does not name the peer" was taken as "the peer never protected").
    "leave-beside-a-silent-peer": (Variant(preferred="west"), [
        ("arm", "west", 1, "before", "PUT ns/app/cluster-status"), ("user", "east", "Failover", "east"),
        ("reconcile", "west"), ("reconcile", "east"), ("vrg", "east"), ("reconcile", "east"), ("delete", "east"),
        *rounds(2),
    ], "I4"),
    # A cleared action that was never carried out ends as Cancelled, not InProgress forever.
    "cleared-action-ends": (Variant(preferred="west"), [
        ("user", "west", "Relocate", "east"), ("reconcile", "west"), ("user", "west", "Relocate", "west"),
    ], "I4"),
    # Moving to three stores, one DRPolicy at a time: the peer still on one store must not fail
    # over there once the value moved (mutant move-without-marker: I3).
    "move-while-the-peer-names-one-store": (Variant(preferred="east", migrate=True), [
        *rounds(), ("migrate", "east"), *rounds(1), ("user", "west", "Failover", "west"), ("crash", "east"),
        *[e for e in rounds(3) if e[1:2] != ("east",)],
    ], "I3"),
    # Flux owns the application: a relocate demotes only after Flux pruned it on the source, and
    # the old Primary back after a failover does the same (mutant demote-under-running-app: I6).
    "relocate-and-failover-with-flux": (Variant(preferred="east", volsync=True, flux=True), [
        *rounds(), ("flux", "east"), *rounds(1), ("user", "east", "Relocate", "west"), ("reconcile", "east"),
        ("reconcile", "east"), ("vrg", "east"), ("reconcile", "east"), *rounds(2), ("flux", "east"),
        *rounds(3), ("flux", "west"), ("s3", "west", "down"), ("user", "east", "Failover", "east"), *rounds(3),
        ("s3", "west", "up"), *rounds(2), ("flux", "west"), *rounds(2),
    ], "I6"),
    # Argo CD deploys the application: a relocate demotes only after the plugin acknowledged that
    # Argo CD's Application is gone (mutants demote-under-running-app, ack-before-application-gone:
    # I6). The acknowledgement is tried before Argo CD generated, and after.
    "relocate-and-failover-with-argocd": (Variant(preferred="east", argocd=True), [
        *rounds(), ("argocd", "east"), ("argocd", "west"), ("argoack", "west"), *rounds(2),
        ("user", "east", "Relocate", "west"), *rounds(1), ("argoack", "east"), *rounds(2), ("argocd", "east"),
        ("argoack", "east"), *rounds(3), ("argocd", "west"), ("s3", "west", "down"),
        ("user", "east", "Failover", "east"), *rounds(3), ("argocd", "east"), ("s3", "west", "up"),
        ("reconcile", "west"), ("argoack", "west"), *rounds(2), ("argocd", "west"), ("argoack", "west"), *rounds(2),
    ], "I6"),
    # The plugin acknowledged the first withdrawal of ReadyForApplication (before the application
    # ever ran); a relocate withdrew it again within the same second. Both withdrawals carried one
    # transition time, so the old acknowledgement passed for the new one and the source demoted
    # under the running application (seed 204706; relocate asked on the target only).
    "acknowledgement-of-an-earlier-withdrawal-in-the-same-second": (Variant(preferred="west", argocd=True), [
        ("reconcile", "west"), ("reconcile", "east"), ("vrg", "west"), ("argoack", "west"), ("reconcile", "west"),
        ("argocd", "west"), ("argoack", "east"), ("user", "east", "Relocate", "east"),
    ], "I6"),
    # The same with the relocate asked on the source, while moving to three stores (seed 208958).
    "acknowledgement-of-an-earlier-withdrawal-asked-on-the-source": (
        Variant(preferred="west", migrate=True, argocd=True), [
            ("reconcile", "west"), ("argoack", "west"), ("vrg", "west"), ("reconcile", "west"), ("argocd", "west"),
            ("resync", "east"), ("user", "west", "Relocate", "east"), ("argoack", "east"),
        ], "I6"),
}
