"""Low-level S3 access: conditional get/put/delete with botocore errors mapped to the taxonomy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from reconciler.s3peer.errors import (
    ConditionalWritesUnsupported,
    PreconditionFailed,
    S3PeerError,
    StoreMisconfigured,
    Throttled,
    Unreachable,
)
from reconciler.s3peer.profiles import ClientSettings, Credentials, make_client

_THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
_AUTH_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "AllAccessDisabled",
    "InvalidBucketName",
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
}


@dataclass(frozen=True)
class StoredObject:
    key: str
    data: bytes
    etag: str


class NotModified:
    """Returned by a conditional GET when the object still has the ETag we hold."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_MODIFIED"


NOT_MODIFIED = NotModified()


def classify(exc: Exception, *, key: str | None, operation: str, conditional: bool = False) -> S3PeerError:
    """Map a botocore exception to the taxonomy (pure: no I/O)."""
    if isinstance(exc, S3PeerError):
        return exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        msg = f"{operation}: {code or status} {err.get('Message', '')}".strip()
        # 409 ConditionalRequestConflict: a concurrent conditional write won on AWS.
        lost = status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict")
        if lost or (status == 409 and conditional):
            return PreconditionFailed(msg, key=key)
        if code in _THROTTLE_CODES or status == 429:
            return Throttled(msg, key=key)
        if conditional and (status == 501 or code == "NotImplemented"):
            return ConditionalWritesUnsupported(msg, key=key)
        if code in _AUTH_CODES or status in (301, 400, 403):
            return StoreMisconfigured(msg, key=key)
        if status >= 500 or status == 0:
            return Unreachable(msg, key=key)
        return S3PeerError(msg, key=key)
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return Unreachable(f"{operation}: {type(exc).__name__}: {exc}", key=key)
    if isinstance(exc, BotoCoreError):
        return S3PeerError(f"{operation}: {type(exc).__name__}: {exc}", key=key)
    raise exc


def _status(exc: ClientError) -> tuple[str, int]:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


class ObjectStore:
    """One bucket through one boto3 client. Thread-safe as boto3 clients are."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], client_settings: ClientSettings | None = None) -> ObjectStore:
        """From a settings map {endpoint, region, bucket, accessKeyId, secretAccessKey} (the local env's s3.json)."""
        creds = Credentials(access_key_id=settings["accessKeyId"], secret_access_key=settings["secretAccessKey"])
        return cls(make_client(settings["endpoint"], settings["region"], creds, client_settings), settings["bucket"])

    def get(self, key: str, *, if_none_match: str | None = None, max_bytes: int | None = None,
            ) -> StoredObject | NotModified | None:
        """GET; None when absent; NOT_MODIFIED when `if_none_match` still matches."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_none_match:
            kwargs["IfNoneMatch"] = if_none_match
        try:
            resp = self.client.get_object(**kwargs)
            body = resp["Body"]
            try:
                # Read at most one byte past the limit: enough to call it oversized.
                data = body.read() if max_bytes is None else body.read(max_bytes + 1)
            finally:
                body.close()
        except ClientError as e:
            code, status = _status(e)
            if status == 304 or code in ("304", "NotModified"):
                return NOT_MODIFIED
            if status == 404 and code in ("NoSuchKey", "404", "NotFound"):
                return None
            raise classify(e, key=key, operation="GetObject") from None
        except BotoCoreError as e:
            raise classify(e, key=key, operation="GetObject") from None
        except OSError as e:  # a body stream cut mid-read
            raise Unreachable(f"GetObject: {type(e).__name__}", key=key) from None
        return StoredObject(key=key, data=data, etag=str(resp["ETag"]))

    def put(self, key: str, data: bytes, *, if_none_match_any: bool = False, if_match: str | None = None,
            content_type: str = "application/json") -> str:
        """PUT, optionally conditional; returns the new ETag. Raises PreconditionFailed when the condition fails."""
        if if_none_match_any and if_match:
            raise ValueError("If-None-Match: * and If-Match are exclusive")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data, "ContentType": content_type}
        if if_none_match_any:
            kwargs["IfNoneMatch"] = "*"
        if if_match:
            kwargs["IfMatch"] = if_match
        conditional = bool(if_none_match_any or if_match)
        try:
            resp = self.client.put_object(**kwargs)
        except ClientError as e:
            code, status = _status(e)
            if if_match and status == 404:
                # The version we read is gone: the precondition does not hold.
                raise PreconditionFailed(f"PutObject: {code}", key=key) from None
            raise classify(e, key=key, operation="PutObject", conditional=conditional) from None
        except BotoCoreError as e:
            raise classify(e, key=key, operation="PutObject") from None
        return str(resp["ETag"])

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """DELETE; absent objects are fine. With `if_match`, only that version is deleted."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_match:
            kwargs["IfMatch"] = if_match
        try:
            self.client.delete_object(**kwargs)
        except ClientError as e:
            code, status = _status(e)
            if status == 404 and not if_match:
                return
            if if_match and status == 404:
                raise PreconditionFailed(f"DeleteObject: {code}", key=key) from None
            raise classify(e, key=key, operation="DeleteObject", conditional=bool(if_match)) from None
        except BotoCoreError as e:
            raise classify(e, key=key, operation="DeleteObject") from None

    def list_keys(self, prefix: str) -> list[str]:
        """All keys under a prefix (LIST is priced like PUT: for tools and cleanup, not for polling)."""
        keys: list[str] = []
        token: str | None = None
        try:
            while True:
                kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
                if token:
                    kwargs["ContinuationToken"] = token
                resp = self.client.list_objects_v2(**kwargs)
                keys.extend(str(o["Key"]) for o in resp.get("Contents", []))
                if not resp.get("IsTruncated"):
                    return keys
                token = resp.get("NextContinuationToken")
        except (ClientError, BotoCoreError) as e:
            raise classify(e, key=prefix, operation="ListObjectsV2") from None
