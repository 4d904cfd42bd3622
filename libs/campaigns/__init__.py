"""Campaign state shared by the calls service (callbacks) and the worker (dialer, reconciler)."""
