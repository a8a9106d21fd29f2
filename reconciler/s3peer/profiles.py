"""S3 profiles in Ramen's RamenConfig format, credentials from a Secret, and the boto3 client."""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import yaml
from botocore.config import Config

from reconciler.s3peer.errors import StoreMisconfigured

ACCESS_KEY_FIELD = "AWS_ACCESS_KEY_ID"
SECRET_KEY_FIELD = "AWS_SECRET_ACCESS_KEY"
#: The key of the RamenConfig document inside Ramen's operator ConfigMap.
RAMEN_CONFIG_KEY = "ramen_manager_config.yaml"


@dataclass(frozen=True)
class SecretRef:
    name: str
    namespace: str


@dataclass(frozen=True)
class S3Profile:
    """One entry of RamenConfig `s3StoreProfiles[]`."""

    name: str
    bucket: str
    endpoint: str
    region: str
    secret_ref: SecretRef
    ca_certificates: bytes | None = None


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)  # never printed, never logged
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ClientSettings:
    """Bounded timeouts and retries: a hung S3 must turn into Unreachable, not a stuck worker."""

    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    max_attempts: int = 3
    retry_mode: str = "standard"
    #: Reconcile workers (16 by default) and the peer reader's parallel fetches (8) share the pool.
    max_pool_connections: int = 32


def _str(doc: Mapping[str, Any], field_name: str, where: str) -> str:
    v = doc.get(field_name)
    if not isinstance(v, str) or not v:
        raise StoreMisconfigured(f"{where}: {field_name} must be a non-empty string")
    return v


def parse_profile(doc: Mapping[str, Any]) -> S3Profile:
    name = _str(doc, "s3ProfileName", "s3StoreProfile")
    where = f"s3StoreProfile {name}"
    ref = doc.get("s3SecretRef")
    if not isinstance(ref, Mapping):
        raise StoreMisconfigured(f"{where}: s3SecretRef must be an object")
    ca = doc.get("caCertificates")
    ca_bytes: bytes | None = None
    if ca is not None:
        if not isinstance(ca, str):
            raise StoreMisconfigured(f"{where}: caCertificates must be a base64 string")
        try:
            ca_bytes = base64.b64decode(ca, validate=True)
        except (binascii.Error, ValueError):
            raise StoreMisconfigured(f"{where}: caCertificates is not valid base64") from None
    return S3Profile(
        name=name,
        bucket=_str(doc, "s3Bucket", where),
        endpoint=_str(doc, "s3CompatibleEndpoint", where),
        region=_str(doc, "s3Region", where),
        # Ramen defaults the Secret namespace to the operator's namespace when omitted.
        secret_ref=SecretRef(name=_str(ref, "name", where), namespace=str(ref.get("namespace") or "")),
        ca_certificates=ca_bytes,
    )


def parse_ramen_config(config: Mapping[str, Any] | str) -> dict[str, S3Profile]:
    """Profiles by name from a RamenConfig (a mapping, YAML text, or a ConfigMap holding it)."""
    doc: Any = yaml.safe_load(config) if isinstance(config, str) else config
    if isinstance(doc, Mapping) and isinstance(doc.get("data"), Mapping) and RAMEN_CONFIG_KEY in doc["data"]:
        doc = yaml.safe_load(doc["data"][RAMEN_CONFIG_KEY])
    if not isinstance(doc, Mapping):
        raise StoreMisconfigured("RamenConfig is not a mapping")
    raw = doc.get("s3StoreProfiles", [])
    if not isinstance(raw, list):
        raise StoreMisconfigured("RamenConfig s3StoreProfiles must be a list")
    out: dict[str, S3Profile] = {}
    for item in raw:
        if not isinstance(item, Mapping):
            raise StoreMisconfigured("RamenConfig s3StoreProfiles entries must be objects")
        p = parse_profile(item)
        if p.name in out:
            raise StoreMisconfigured(f"duplicate s3ProfileName {p.name}")
        out[p.name] = p
    return out


def _secret_value(value: str | bytes, *, encoded: bool, field_name: str) -> str:
    if isinstance(value, bytes):
        raw = value
    elif encoded:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise StoreMisconfigured(f"Secret field {field_name} is not valid base64") from None
    else:
        raw = value.encode()
    text = raw.decode("utf-8", errors="strict").strip()
    if not text:
        raise StoreMisconfigured(f"Secret field {field_name} is empty")
    return text


def credentials_from_secret(secret: Mapping[str, Any]) -> Credentials:
    """Credentials from a Secret: a whole Secret object (`data` base64, `stringData` plain)
    or just its `data` map. `str` values under `data` are base64 as the API returns them;
    `bytes` values are taken as already decoded (the kubernetes client's decoded form).
    """
    if "data" in secret or "stringData" in secret:
        merged: dict[str, tuple[str | bytes, bool]] = {}
        for k, v in (secret.get("data") or {}).items():
            merged[k] = (v, True)
        for k, v in (secret.get("stringData") or {}).items():
            merged[k] = (v, False)
    else:
        merged = {k: (v, True) for k, v in secret.items()}
    vals: dict[str, str] = {}
    for f in (ACCESS_KEY_FIELD, SECRET_KEY_FIELD):
        if f not in merged:
            raise StoreMisconfigured(f"Secret lacks {f}")
        value, encoded = merged[f]
        if not isinstance(value, str | bytes):
            raise StoreMisconfigured(f"Secret field {f} must be a string")
        vals[f] = _secret_value(value, encoded=encoded, field_name=f)
    return Credentials(access_key_id=vals[ACCESS_KEY_FIELD], secret_access_key=vals[SECRET_KEY_FIELD])


def credentials_from_env(environ: Mapping[str, str] | None = None) -> Credentials:
    env = os.environ if environ is None else environ
    ak, sk = env.get(ACCESS_KEY_FIELD), env.get(SECRET_KEY_FIELD)
    if not ak or not sk:
        raise StoreMisconfigured(f"set {ACCESS_KEY_FIELD} and {SECRET_KEY_FIELD} in the environment")
    return Credentials(access_key_id=ak, secret_access_key=sk, session_token=env.get("AWS_SESSION_TOKEN") or None)


def _ca_bundle_path(pem: bytes) -> str:
    # botocore wants a file path; the bundle is public material, a temp file is fine.
    f = tempfile.NamedTemporaryFile(prefix="s3-ca-", suffix=".pem", delete=False)  # noqa: SIM115
    with f:
        f.write(pem)
    return f.name


def make_client(
    endpoint: str,
    region: str,
    credentials: Credentials,
    settings: ClientSettings | None = None,
    *,
    ca_certificates: bytes | None = None,
) -> Any:
    """A boto3 S3 client: path-style addressing, bounded connect/read timeouts, bounded retries."""
    s = settings or ClientSettings()
    cfg = Config(
        s3={"addressing_style": "path"},
        connect_timeout=s.connect_timeout,
        read_timeout=s.read_timeout,
        retries={"max_attempts": s.max_attempts, "mode": s.retry_mode},
        max_pool_connections=s.max_pool_connections,
        # Checksums the store may not know (CRC trailers) would make clones reject PUTs.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    kwargs: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region_name": region,
        "aws_access_key_id": credentials.access_key_id,
        "aws_secret_access_key": credentials.secret_access_key,
        "config": cfg,
    }
    if credentials.session_token:
        kwargs["aws_session_token"] = credentials.session_token
    if ca_certificates:
        kwargs["verify"] = _ca_bundle_path(ca_certificates)
    return boto3.session.Session().client("s3", **kwargs)


def client_for_profile(profile: S3Profile, credentials: Credentials, settings: ClientSettings | None = None) -> Any:
    return make_client(profile.endpoint, profile.region, credentials, settings, ca_certificates=profile.ca_certificates)
