"""The development commands of `switchboard` (registered as entry points, not imported by
libs.cli)."""
