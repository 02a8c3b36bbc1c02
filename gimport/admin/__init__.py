"""Admin mode: a campus with a service account (users file, shards, per-user report, the run)."""
