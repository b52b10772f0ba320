"""The networks: per-family adapters, GLU-site capture, loading, live runs on one worker."""
