"""What gimport knows of mail and of Gmail, as pure functions and tables (no I/O): folder -> labels
(mapping), which messages a run selects (selection), raw message bytes (rfc822), what Gmail's calls cost
and how large a message may be (quota)."""
