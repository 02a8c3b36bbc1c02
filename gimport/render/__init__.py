"""Rendering: everything a person reads on the terminal is built here; the engine never prints."""
