"""RamenConfig s3StoreProfiles parsing, Secret credentials, and error classification."""

from __future__ import annotations

import base64

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from reconciler.s3peer import (
    ConditionalWritesUnsupported,
    Credentials,
    PreconditionFailed,
    StoreMisconfigured,
    Throttled,
    Unreachable,
    classify,
    credentials_from_secret,
    parse_ramen_config,
)

RAMEN_CONFIG = """
apiVersion: ramendr.openshift.io/v1alpha1
kind: RamenConfig
s3StoreProfiles:
- s3ProfileName: minio-east
  s3Bucket: bucket
  s3CompatibleEndpoint: http://minio.east:9000
  s3Region: us-east-1
  s3SecretRef:
    name: ramen-s3-secret
    namespace: ramen-system
- s3ProfileName: minio-west
  s3Bucket: bucket
  s3CompatibleEndpoint: http://minio.west:9000
  s3Region: us-west-1
  s3SecretRef:
    name: ramen-s3-secret-west
"""


def test_parse_ramen_config_profiles() -> None:
    profiles = parse_ramen_config(RAMEN_CONFIG)
    assert sorted(profiles) == ["minio-east", "minio-west"]
    east = profiles["minio-east"]
    assert (east.bucket, east.endpoint, east.region) == ("bucket", "http://minio.east:9000", "us-east-1")
    assert (east.secret_ref.name, east.secret_ref.namespace) == ("ramen-s3-secret", "ramen-system")
    assert profiles["minio-west"].secret_ref.namespace == ""


def test_parse_ramen_config_from_its_configmap() -> None:
    cm = {"data": {"ramen_manager_config.yaml": RAMEN_CONFIG}}
    assert "minio-west" in parse_ramen_config(cm)


@pytest.mark.parametrize(
    "cfg",
    ["s3StoreProfiles: {}", "s3StoreProfiles: [{s3ProfileName: a}]",
     "s3StoreProfiles: [{s3ProfileName: a, s3Bucket: b, s3CompatibleEndpoint: e, s3Region: r}]",
     "s3StoreProfiles: [{s3ProfileName: a, s3Bucket: b, s3CompatibleEndpoint: e, s3Region: r, "
     "s3SecretRef: {name: s}}, {s3ProfileName: a, s3Bucket: b, s3CompatibleEndpoint: e, s3Region: r, "
     "s3SecretRef: {name: s}}]"],
    ids=["not-a-list", "missing-fields", "no-secret-ref", "duplicate-name"],
)
def test_bad_profiles_are_refused_with_a_message(cfg: str) -> None:
    with pytest.raises(StoreMisconfigured):
        parse_ramen_config(cfg)


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_credentials_from_secret_data_base64() -> None:
    c = credentials_from_secret({"data": {"AWS_ACCESS_KEY_ID": _b64("AK"), "AWS_SECRET_ACCESS_KEY": _b64("SK")}})
    assert (c.access_key_id, c.secret_access_key) == ("AK", "SK")


def test_credentials_from_plain_data_map_and_string_data() -> None:
    assert credentials_from_secret({"AWS_ACCESS_KEY_ID": _b64("AK"), "AWS_SECRET_ACCESS_KEY": b"SK"}) == \
        Credentials("AK", "SK")
    assert credentials_from_secret({"stringData": {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}}) == \
        Credentials("AK", "SK")


def test_missing_or_invalid_secret_fields_are_refused() -> None:
    with pytest.raises(StoreMisconfigured, match="AWS_SECRET_ACCESS_KEY"):
        credentials_from_secret({"data": {"AWS_ACCESS_KEY_ID": _b64("AK")}})
    with pytest.raises(StoreMisconfigured, match="base64"):
        credentials_from_secret({"data": {"AWS_ACCESS_KEY_ID": "!!!", "AWS_SECRET_ACCESS_KEY": _b64("S")}})


def test_secret_key_never_appears_in_repr() -> None:
    c = Credentials("AKID", "very-secret-value")
    assert "very-secret-value" not in repr(c)


def _client_error(status: int, code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutObject")


@pytest.mark.parametrize(
    ("exc", "cls", "reason"),
    [
        (_client_error(412, "PreconditionFailed"), PreconditionFailed, "PreconditionFailed"),
        (_client_error(409, "ConditionalRequestConflict"), PreconditionFailed, "PreconditionFailed"),
        (_client_error(503, "SlowDown"), Throttled, "S3Throttled"),
        (_client_error(429, "TooManyRequests"), Throttled, "S3Throttled"),
        (_client_error(500, "InternalError"), Unreachable, "S3Unreachable"),
        (_client_error(403, "AccessDenied"), StoreMisconfigured, "S3Misconfigured"),
        (_client_error(404, "NoSuchBucket"), StoreMisconfigured, "S3Misconfigured"),
        (_client_error(501, "NotImplemented"), ConditionalWritesUnsupported, "ConditionalWritesUnsupported"),
        (EndpointConnectionError(endpoint_url="http://x"), Unreachable, "S3Unreachable"),
        (ReadTimeoutError(endpoint_url="http://x"), Unreachable, "S3Unreachable"),
    ],
)
def test_botocore_errors_map_to_the_taxonomy(exc: Exception, cls: type, reason: str) -> None:
    err = classify(exc, key="k", operation="PutObject", conditional=True)
    assert type(err) is cls and err.reason == reason and err.key == "k"
