"""What the api and calls Flask apps share: errors, request ids, metrics, health, sessions."""
