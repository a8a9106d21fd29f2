"""End-to-end tooling: the local two-cluster environment, the VRG simulator and scenarios."""
