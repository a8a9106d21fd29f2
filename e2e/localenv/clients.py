"""API clients for the local environment, shared by tests, benchmarks and the demo."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from kubernetes import client, config


@dataclass
class Cluster:
    """One local cluster as tests see it."""

    name: str
    kubeconfig: Path
    api: client.ApiClient

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def apiext(self) -> client.ApiextensionsV1Api:
        return client.ApiextensionsV1Api(self.api)


def kube_cluster(name: str, kubeconfig: Path) -> Cluster:
    return Cluster(name=name, kubeconfig=kubeconfig, api=config.new_client_from_config(config_file=str(kubeconfig)))


def s3_config(path: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads(path.read_text())
    return data


def s3_client(cfg: dict[str, str], **config_kwargs: Any) -> Any:
    """A boto3 S3 client for the local server: path-style, bounded timeouts."""
    opts: dict[str, Any] = {
        "s3": {"addressing_style": "path"},
        "connect_timeout": 3,
        "read_timeout": 10,
        "retries": {"max_attempts": 2, "mode": "standard"},
    }
    opts.update(config_kwargs)
    return boto3.client(
        "s3",
        endpoint_url=cfg["endpoint"],
        region_name=cfg["region"],
        aws_access_key_id=cfg["accessKeyId"],
        aws_secret_access_key=cfg["secretAccessKey"],
        config=Config(**opts),
    )
