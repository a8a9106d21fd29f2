"""A real local environment: kube-apiserver + etcd per cluster and one S3 server."""

from e2e.localenv.env import LocalEnv, StartError, default_root, down, private, up

__all__ = ["LocalEnv", "StartError", "default_root", "down", "private", "up"]
