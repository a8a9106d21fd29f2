"""An in-memory S3 bucket behind a boto3-shaped client, for the deterministic simulation.

It answers the four calls `reconciler.s3peer.store.ObjectStore` makes (get_object,
put_object, delete_object, list_objects_v2) the way S3 does: conditional writes are
atomic, a failed condition is a 412 `PreconditionFailed`, an If-None-Match GET that
still matches is a 304, a missing key a 404 `NoSuchKey`. Every write is kept in a
history so invariants can be checked against everything ever stored.

Faults are injected per client (one client per cluster): an outage, a request lost
before it reaches the store, a write that is applied but answered with a timeout,
an ambiguous conditional write (applied, then a 412 when the client "retries"), and
a late write (answered with a timeout, applied at a later step).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError


def _client_error(status: int, code: str, op: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       op)


@dataclass
class Version:
    key: str
    data: bytes | None  # None: a delete
    etag: str
    writer: str


@dataclass
class MemBucket:
    objects: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    history: list[Version] = field(default_factory=list)
    _etags: int = 0
    down: bool = False  # the store itself is gone (its site is lost): nobody reaches it

    def next_etag(self) -> str:
        self._etags += 1
        return f'"e{self._etags}"'

    def put(self, key: str, data: bytes, writer: str, if_match: str | None = None,
            if_none_match: str | None = None) -> str:
        cur = self.objects.get(key)
        if if_none_match == "*" and cur is not None:
            raise _client_error(412, "PreconditionFailed", "PutObject")
        if if_match is not None:
            if cur is None:
                raise _client_error(404, "NoSuchKey", "PutObject")
            if cur[1] != if_match:
                raise _client_error(412, "PreconditionFailed", "PutObject")
        etag = self.next_etag()
        self.objects[key] = (data, etag)
        self.history.append(Version(key, data, etag, writer))
        return etag

    def delete(self, key: str, writer: str, if_match: str | None = None) -> None:
        cur = self.objects.get(key)
        if if_match is not None and (cur is None or cur[1] != if_match):
            raise _client_error(412 if cur is not None else 404, "PreconditionFailed", "DeleteObject")
        if cur is not None:
            del self.objects[key]
            self.history.append(Version(key, None, "", writer))


class Body:
    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._b.read(n)

    def close(self) -> None:
        pass


@dataclass
class Faults:
    down: bool = False
    lose_next: bool = False  # the next request never reaches the store
    timeout_next_write: bool = False  # the next write is applied, the answer lost
    ambiguous_next_cas: bool = False  # the next conditional write is applied, its retry gets 412
    late_next_write: bool = False  # the next write is applied later, the answer lost now


class MemS3Client:
    """One cluster's boto3-shaped client onto the shared MemBucket."""

    def __init__(self, bucket: MemBucket, cluster: str, io_hook: Callable[[str], Callable[[], None]],
                 late: list[Callable[[], None]]) -> None:
        self.bucket = bucket
        self.cluster = cluster
        self.faults = Faults()
        self._io = io_hook  # called before each request; returns what to call after it
        self._late = late

    def _unreachable(self) -> Exception:
        err: Exception = EndpointConnectionError(endpoint_url="mem://s3")
        return err

    def _gate(self) -> None:
        if self.faults.down or self.bucket.down:
            raise self._unreachable()
        if self.faults.lose_next:
            self.faults.lose_next = False
            raise self._unreachable()

    def get_object(self, Bucket: str, Key: str, IfNoneMatch: str | None = None) -> dict[str, Any]:
        after = self._io(f"s3 GET {Key}")
        self._gate()
        cur = self.bucket.objects.get(Key)
        after()
        if cur is None:
            raise _client_error(404, "NoSuchKey", "GetObject")
        if IfNoneMatch is not None and IfNoneMatch == cur[1]:
            raise _client_error(304, "304", "GetObject")
        return {"Body": Body(cur[0]), "ETag": cur[1]}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str = "",
                   IfMatch: str | None = None, IfNoneMatch: str | None = None) -> dict[str, Any]:
        after = self._io(f"s3 PUT {Key}")
        self._gate()
        conditional = IfMatch is not None or IfNoneMatch is not None
        f = self.faults
        if f.late_next_write:
            f.late_next_write = False

            def deliver() -> None:
                with contextlib.suppress(ClientError):  # a late conditional write may fail
                    self.bucket.put(Key, Body, self.cluster, IfMatch, IfNoneMatch)
            self._late.append(deliver)
            raise ReadTimeoutError(endpoint_url="mem://s3")
        etag = self.bucket.put(Key, Body, self.cluster, IfMatch, IfNoneMatch)
        after()
        if f.timeout_next_write:
            f.timeout_next_write = False
            raise ReadTimeoutError(endpoint_url="mem://s3")
        if conditional and f.ambiguous_next_cas:
            # The first attempt was applied but its answer lost; the SDK's retry meets the
            # changed object and reports the precondition failed.
            f.ambiguous_next_cas = False
            raise _client_error(412, "PreconditionFailed", "PutObject")
        return {"ETag": etag}

    def delete_object(self, Bucket: str, Key: str, IfMatch: str | None = None) -> dict[str, Any]:
        after = self._io(f"s3 DELETE {Key}")
        self._gate()
        self.bucket.delete(Key, self.cluster, IfMatch)
        after()
        return {}

    def list_objects_v2(self, Bucket: str, Prefix: str = "", ContinuationToken: str | None = None
                        ) -> dict[str, Any]:
        after = self._io(f"s3 LIST {Prefix}")
        self._gate()
        keys = sorted(k for k in self.bucket.objects if k.startswith(Prefix))
        after()
        return {"Contents": [{"Key": k} for k in keys], "IsTruncated": False}
