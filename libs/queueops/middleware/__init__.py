"""Switchboard's own Dramatiq middleware, one per file."""
