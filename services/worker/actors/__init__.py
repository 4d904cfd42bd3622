"""Every actor module; importing this package registers their implementations."""

from services.worker.actors import maintenance, system

__all__ = ["maintenance", "system"]
