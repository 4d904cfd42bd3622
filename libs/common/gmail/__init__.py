"""Gmail: the OAuth web flow, the API client, and the per-user quota it stays under."""
