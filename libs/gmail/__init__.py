"""Gmail: the OAuth web flow and the API client (the quota lives with the worker's sync)."""
