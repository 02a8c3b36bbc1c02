"""Pacing that knows nothing of Gmail: a per-minute rate with backoff and a concurrency limit (rate), and a
budget of units per quota day (daily). Gmail's answers reach them through gimport.calls only."""
