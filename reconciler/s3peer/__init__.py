"""Peer coordination through S3: the library behind protocol.md.

Use it like this in the DRControl reconciler (cluster C, peer P, app A):

    store = ObjectStore(client_for_profile(profile, credentials_from_secret(secret)), profile.bucket)
    me = Coordinator(store, "C", keys=KeySchema(prefix), hmac_key=key)
    peer = PeerReader(store, "P", keys=KeySchema(prefix), hmac_key=key, stale_after=180)

    state = me.read_dr_state(A)          # Record[DRState] | None; raises Unreachable / CorruptObject
    snap = peer.snapshot()               # one poll per interval, shared by all reconciles
    snap.status(A), snap.intent(A), peer.health()
    me.claim_initial(A) / me.transition(A, state, Action.FAILOVER, intent_nonce=...)
    me.write_intent(A, DRIntent(...)); me.write_cluster_status(A, ClusterStatus(...))
    me.heartbeat(operator_version=...)   # every heartbeat interval

Decisions where protocol.md is silent
-------------------------------------
- Envelope decoding is strict at the top level: an unknown top-level field is
  corrupt (a new field means a new apiVersion). Body models ignore unknown
  fields but validate the known ones (types, enums, generation >= 1, and
  "generation 1 iff action Initial"). JSON with duplicate keys or NaN is corrupt.
  Signatures cover the canonical JSON (sorted keys, no spaces) of the envelope
  without `signature`. Without a configured key, a well-formed signature is
  accepted unchecked.
- The 1 MiB limit applies to our envelopes. Ramen's gzip metadata may be up to
  16 MiB once decompressed (a bound against decompression bombs); plain JSON
  is accepted too.
- A 412 on a conditional PUT, and also a 404 on an If-Match PUT/DELETE and AWS's
  409 ConditionalRequestConflict, all mean PreconditionFailed: re-read. After
  any dr-state 412 the object is re-read; the write is ours iff the stored
  nonce is ours. Callers may pass `nonce=` to make a retry after an unknown
  outcome (e.g. Unreachable during the PUT) idempotent.
- Only the cluster that becomes Primary writes dr-state, so `transition` always
  names the caller as the new primary, and a transition to the current primary
  raises ValueError (the no-op is the caller's to report).
- Rollback guard: the remembered value is (generation, primary). A missing
  dr-state after one was seen is also a rollback (a restored or wiped bucket
  must not lead to a new generation-1 claim by a different cluster).
- dr-state can be deleted only with If-Match on the version read.
- The digest maps "ns/vrg" to {statusHash, role, observedGeneration,
  intentHash?} and holds the storageClassesHash, in pages under an index
  (digestpages.py): intents and storage classes are also found through the
  digest, so a steady-state poll is exactly 2 conditional GETs (health + digest
  index). statusHash/intentHash are 64-bit SHA-256 prefixes of
  the canonical body JSON (so identical content is never rewritten). An entry
  may have statusHash null when the cluster has only written an intent.
- Write order is object first, digest second; a crash in between costs one
  redundant write after restart, never a missed change. The digest is written
  only when it changes (not rewritten by every heartbeat, which would make the
  peer re-read it); `heartbeat()` flushes a pending digest.
- On start, a Coordinator loads its own digest (index and pages) from S3 to know
  which statuses are already there, and continues the heartbeat and digest
  sequences it finds.
- Peer liveness: any change of the health object's ETag counts as a heartbeat,
  even if its content is corrupt (a corrupt heartbeat is reported but must not
  trigger an automatic failover by itself). A peer never seen is tracked from
  the reader's start, so it becomes stale only after stale_after has passed.
  A failed poll changes nothing: staleness is never judged from our own outage.
- Snapshots are cached for the poll interval; a failed poll is cached for 5 s
  so a storm of reconciles during an outage does not hammer S3.
- The digest is what a cluster has said: a peer cluster-status or intent whose
  content differs from its digest entry (object written, digest not yet) is not
  used until the digest catches up. A writer reads its own published state from
  its digest too, so the two sides never disagree about, say, a release.
- Time during which our polls fail does not count as the peer's silence: after
  an outage the peer is judged stale only once staleAfter has passed in sight.
"""

from reconciler.s3peer.drstate import (
    STATE_ROLLBACK_REASON,
    Record,
    Rollback,
    RollbackKind,
    SeenState,
    WriteOutcome,
    check_rollback,
    initial_state,
    next_state,
    remember,
    resolve_precondition_failed,
)
from reconciler.s3peer.envelope import (
    API_VERSION,
    MAX_OBJECT_BYTES,
    Envelope,
    EnvelopeTooLarge,
    Kind,
    content_hash,
    decode,
    decode_ramen_metadata,
    encode,
)
from reconciler.s3peer.errors import (
    ConditionalWritesUnsupported,
    CorruptObject,
    PreconditionFailed,
    S3PeerError,
    SignatureInvalid,
    StoreMisconfigured,
    Throttled,
    Unreachable,
)
from reconciler.s3peer.keys import AppKey, KeySchema
from reconciler.s3peer.models import (
    Action,
    ClusterStatus,
    Digest,
    DigestEntry,
    DRIntent,
    DRState,
    Health,
    Role,
    StorageClasses,
)
from reconciler.s3peer.peer import Coordinator
from reconciler.s3peer.probe import ProbeResult, probe
from reconciler.s3peer.profiles import (
    ClientSettings,
    Credentials,
    S3Profile,
    SecretRef,
    client_for_profile,
    credentials_from_env,
    credentials_from_secret,
    make_client,
    parse_ramen_config,
)
from reconciler.s3peer.snapshot import (
    DEFAULT_STALE_AFTER,
    HealthTrack,
    PeerHealth,
    PeerReader,
    PeerSnapshot,
    assess,
    observe_heartbeat,
    start_tracking,
)
from reconciler.s3peer.store import NOT_MODIFIED, ObjectStore, StoredObject, classify

__all__ = [
    "API_VERSION",
    "DEFAULT_STALE_AFTER",
    "MAX_OBJECT_BYTES",
    "NOT_MODIFIED",
    "STATE_ROLLBACK_REASON",
    "Action",
    "AppKey",
    "ClientSettings",
    "ClusterStatus",
    "ConditionalWritesUnsupported",
    "Coordinator",
    "CorruptObject",
    "Credentials",
    "DRIntent",
    "DRState",
    "Digest",
    "DigestEntry",
    "Envelope",
    "EnvelopeTooLarge",
    "Health",
    "HealthTrack",
    "KeySchema",
    "Kind",
    "ObjectStore",
    "PeerHealth",
    "PeerReader",
    "PeerSnapshot",
    "PreconditionFailed",
    "ProbeResult",
    "Record",
    "Role",
    "Rollback",
    "RollbackKind",
    "S3PeerError",
    "S3Profile",
    "SecretRef",
    "SeenState",
    "SignatureInvalid",
    "StorageClasses",
    "StoreMisconfigured",
    "StoredObject",
    "Throttled",
    "Unreachable",
    "WriteOutcome",
    "assess",
    "check_rollback",
    "classify",
    "client_for_profile",
    "content_hash",
    "credentials_from_env",
    "credentials_from_secret",
    "decode",
    "decode_ramen_metadata",
    "encode",
    "initial_state",
    "make_client",
    "next_state",
    "observe_heartbeat",
    "parse_ramen_config",
    "probe",
    "remember",
    "resolve_precondition_failed",
    "start_tracking",
]
