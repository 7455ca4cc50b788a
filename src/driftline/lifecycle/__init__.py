"""Model lifecycle: the registry of versions, commands (promote, alias moves, rollback),
retention, serving history and the admin HTTP API. I/O here is SQLite and HTTP; Kafka
work (publishing lifecycle events, range replays) lives in ``driftline.runtime``."""

__all__ = ["registry", "commands", "admin"]
