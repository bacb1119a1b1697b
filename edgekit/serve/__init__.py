"""`edgekit serve`: the on-device inference daemon (docs/serve.md)."""
