"""The web layer: the public status page, the private control page, /metrics."""
