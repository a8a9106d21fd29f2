"""Integrations that let deployment tooling follow a DRControl's ReadyForApplication condition.

`appset_plugin` is an Argo CD ApplicationSet plugin generator; `readiness` holds its pure decision.
The Argo CD health check and the Flux health gate live as manifests in argocd/ and flux/.
"""
