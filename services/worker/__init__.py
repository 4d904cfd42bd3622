"""Dramatiq worker processes and the scheduler."""
