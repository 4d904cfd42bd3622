"""Audio formats shared by the calls service and the worker."""
