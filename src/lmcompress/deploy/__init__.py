"""Deployment: model cards, runtime variants, measured latency (docs/deploy.md)."""
