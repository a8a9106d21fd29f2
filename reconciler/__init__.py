"""ramen-p2p: hub-less DR coordination for two Kubernetes clusters through S3."""

__version__ = "0.1.0"
