"""Every actor module; importing this package registers their implementations."""

from services.worker.actors import dialer, leads, maintenance, schedules, system

__all__ = ["dialer", "leads", "maintenance", "schedules", "system"]
