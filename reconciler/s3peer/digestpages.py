"""The digest in pages: a small index and pages of app entries (protocol.md "Digest pages").

One digest object rewritten whole on every report made a report cost O(apps) bytes (460 KB
at 5,000 apps, twice per app in a site failover) and stopped at the 1 MiB object limit near
11,000 apps. Now a report rewrites the page of its app and the index:

- `cluster-info/{c}/digest` holds the index (kind DigestIndex): `{sequence, pageCount,
  pages: {"<i>": <sequence of page i>}, storageClassesHash}`; pages without apps are not listed.
- `cluster-info/{c}/digest-pages/{pageCount}/{i}` holds page i (kind DigestPage): `{sequence,
  pageCount, page, apps: {"ns/vrg": entry}}`, the entries of the apps with
  `page_of(app, pageCount) == i`.

Each flush has a sequence one above the last (continued across restarts from what S3 holds);
its pages carry it and are written before the index that lists them. So a page is never
older than the index listing it unless something other than the writer put it there, and a
reader takes a page whose sequence is at least the one listed (newer: written, its index not
yet) and keeps what it held for a page that is behind, missing or of another layout.

The number of pages is a power of two kept between 16 and 128 apps per page on average
(64 after a resize); a resize writes every page of the new layout under its own keys, then the
index, then deletes the old layout's pages.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.s3peer import envelope as env
from reconciler.s3peer.drstate import Record
from reconciler.s3peer.envelope import Kind, req_int
from reconciler.s3peer.errors import CorruptObject
from reconciler.s3peer.keys import AppKey, KeySchema
from reconciler.s3peer.models import _HASH_MAX, Digest, DigestEntry
from reconciler.s3peer.store import StoredObject

#: Apps per page after a resize, and the averages that trigger one.
APPS_PER_PAGE = 64
GROW_ABOVE = 128
SHRINK_BELOW = 16
#: 2**14 pages of 128 apps is two million apps; the index then stays far below 1 MiB.
MAX_PAGES = 1 << 14


class DigestInconsistent(CorruptObject):
    """A page the index lists is missing, behind the index, or of another layout, and no earlier
    copy is held: the apps of that page are unknown until a later poll finds it."""

    reason = "DigestInconsistent"


def page_key(keys: KeySchema, cluster: str, page_count: int, page: int) -> str:
    """Pages of each layout have keys of their own: a resize interrupted half way leaves the
    layout its index lists whole."""
    return f"{keys.cluster_info(cluster)}digest-pages/{page_count}/{page}"


def pages_prefix(keys: KeySchema, cluster: str) -> str:
    return f"{keys.cluster_info(cluster)}digest-pages/"


def page_of(app: AppKey, page_count: int) -> int:
    """The page holding an app's entry: CRC-32 of "ns/name", so every process agrees."""
    return zlib.crc32(f"{app.namespace}/{app.name}".encode()) % page_count


def page_count_for(apps: int, current: int) -> int:
    """The layout for `apps` entries: `current` while its average stays in bounds, else a resize."""
    if current >= 1 and apps <= GROW_ABOVE * current and (current == 1 or apps >= SHRINK_BELOW * current):
        return current
    want = max(1, -(-apps // APPS_PER_PAGE))
    return min(MAX_PAGES, 1 << (want - 1).bit_length())


def _page_count(body: Mapping[str, Any], key: str | None) -> int:
    p = req_int(body, "pageCount", key, minimum=1, maximum=MAX_PAGES)
    if p & (p - 1):
        raise CorruptObject(f"digest pageCount {p} is not a power of two", key=key)
    return p


@dataclass(frozen=True)
class DigestIndex:
    """The root of a paged digest: which pages exist, at which sequence each was written."""

    sequence: int
    page_count: int
    pages: Mapping[int, int]
    storage_classes_hash: str | None = None

    def to_body(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "pageCount": self.page_count,
                "pages": {str(i): s for i, s in sorted(self.pages.items())},
                "storageClassesHash": self.storage_classes_hash}

    @classmethod
    def from_body(cls, body: Mapping[str, Any], key: str | None = None) -> DigestIndex:
        seq = req_int(body, "sequence", key)
        p = _page_count(body, key)
        raw = body.get("pages")
        if not isinstance(raw, dict):
            raise CorruptObject("digest index pages must be an object", key=key)
        pages: dict[int, int] = {}
        for k in raw:
            if not (k.isascii() and k.isdigit() and len(k) <= 5) or k != str(int(k)) or int(k) >= p:
                raise CorruptObject(f"digest index names page {k!r}, not one of 0..{p - 1}", key=key)
            pages[int(k)] = req_int(raw, k, key, minimum=1, maximum=seq)
        sch = body.get("storageClassesHash")
        if sch is not None and (not isinstance(sch, str) or len(sch) > _HASH_MAX):
            raise CorruptObject("digest storageClassesHash must be a short string", key=key)
        return cls(sequence=seq, page_count=p, pages=pages, storage_classes_hash=sch)


@dataclass(frozen=True)
class DigestPage:
    """One page of a paged digest."""

    sequence: int
    page_count: int
    page: int
    apps: Mapping[AppKey, DigestEntry]

    def to_body(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "pageCount": self.page_count, "page": self.page,
                "apps": {str(a): e.to_body() for a, e in self.apps.items()}}

    @classmethod
    def from_body(cls, body: Mapping[str, Any], key: str | None = None) -> DigestPage:
        seq = req_int(body, "sequence", key, minimum=1)
        p = _page_count(body, key)
        page = req_int(body, "page", key, maximum=p - 1)
        raw = body.get("apps")
        if not isinstance(raw, dict):
            raise CorruptObject("digest page apps must be an object", key=key)
        apps: dict[AppKey, DigestEntry] = {}
        for k, v in raw.items():
            try:
                app = AppKey.parse(k)
            except ValueError:
                raise CorruptObject(f"digest page has an invalid app key {k!r}", key=key) from None
            if page_of(app, p) != page:
                # A page copied to another key (its signature still valid) must not pass for that page.
                raise CorruptObject(f"app {k} does not belong on page {page} of {p}", key=key)
            apps[app] = DigestEntry.from_body(v, key)
        return cls(sequence=seq, page_count=p, page=page, apps=apps)


def usable(page: DigestPage, index: DigestIndex, i: int) -> bool:
    """A page fetched for slot i of `index` may stand for it: same layout, not behind the listing."""
    listed = index.pages.get(i)
    return (listed is not None and page.page == i and page.page_count == index.page_count
            and page.sequence >= listed)


def decode_root(obj: StoredObject, hmac_key: bytes | None) -> Record[Digest | DigestIndex]:
    """The object at the digest key: an index, or the single-object digest of an earlier version."""
    e = env.decode(obj.data, key=obj.key, hmac_key=hmac_key)
    value: Digest | DigestIndex
    if e.kind == Kind.DIGEST_INDEX:
        value = DigestIndex.from_body(e.body, obj.key)
    elif e.kind == Kind.DIGEST:
        value = Digest.from_body(e.body, obj.key)
    else:
        raise CorruptObject(f"kind {e.kind} where {Kind.DIGEST_INDEX} was expected", key=obj.key)
    return Record(value=value, etag=obj.etag, nonce=e.nonce, writer=e.writer, written_at=e.written_at)


def decode_page(obj: StoredObject, hmac_key: bytes | None) -> Record[DigestPage]:
    e = env.decode(obj.data, key=obj.key, expected_kind=Kind.DIGEST_PAGE, hmac_key=hmac_key)
    return Record(value=DigestPage.from_body(e.body, obj.key), etag=obj.etag, nonce=e.nonce, writer=e.writer,
                  written_at=e.written_at)


def behind(i: int, index: DigestIndex, page: DigestPage | None, key: str) -> DigestInconsistent:
    where = "missing" if page is None else (
        f"at sequence {page.sequence} of a {page.page_count}-page layout (slot {page.page})")
    return DigestInconsistent(f"page {i} of the digest index (sequence {index.pages.get(i)}, {index.page_count} "
                              f"pages) is {where}", key=key)


@dataclass(frozen=True)
class LoadedDigest:
    """A cluster's digest as read from S3, whole: the index (None for a single-object digest of an
    earlier version), the pages taken, and the problems of those not taken."""

    apps: Mapping[AppKey, DigestEntry]
    storage_classes_hash: str | None
    index: DigestIndex | None
    index_etag: str
    pages: Mapping[int, Record[DigestPage]]
    problems: Mapping[int, CorruptObject]


def read_digest(fetch: Callable[[str], StoredObject | None], keys: KeySchema, cluster: str,
                hmac_key: bytes | None) -> LoadedDigest | None:
    """Read a cluster's digest: the index, then every page it lists (None: no digest at all).

    A page that cannot be taken is left out and named in `problems`; a corrupt index raises
    CorruptObject.
    """
    root = fetch(keys.digest(cluster))
    if root is None:
        return None
    rec = decode_root(root, hmac_key)
    if isinstance(rec.value, Digest):
        return LoadedDigest(apps=dict(rec.value.apps), storage_classes_hash=rec.value.storage_classes_hash,
                            index=None, index_etag=rec.etag, pages={}, problems={})
    index = rec.value
    apps: dict[AppKey, DigestEntry] = {}
    pages: dict[int, Record[DigestPage]] = {}
    problems: dict[int, CorruptObject] = {}
    for i in sorted(index.pages):
        key = page_key(keys, cluster, index.page_count, i)
        obj = fetch(key)
        try:
            prec = decode_page(obj, hmac_key) if obj is not None else None
        except CorruptObject as e:
            problems[i] = e
            continue
        if prec is None or not usable(prec.value, index, i):
            problems[i] = behind(i, index, prec.value if prec else None, key)
            continue
        pages[i] = prec
        apps.update(prec.value.apps)
    return LoadedDigest(apps=apps, storage_classes_hash=index.storage_classes_hash, index=index,
                        index_etag=rec.etag, pages=pages, problems=problems)
