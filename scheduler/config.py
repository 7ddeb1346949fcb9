"""The server's settings: a frozen, validated object (the CLI builds it from flags and env)."""
from __future__ import annotations

from dataclasses import dataclass, field

from fsm.errors import ConfigError


@dataclass(frozen=True)
class ServerConfig:
    mongo_uri: str
    db_name: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 8
    #: Larger request bodies get 413 before they are read.
    max_body_bytes: int = 16 << 20
    #: Signs web sessions; generated once and kept in MongoDB when not given.
    secret_key: str | None = None
    #: When given, this token works for the user ``admin`` (created on first start).
    admin_token: str | None = None
    #: A worker not seen for this long is offline.
    offline_after_s: float = 10.0
    housekeeping_s: float = 1.0
    #: Whether this process may run the periodic jobs (it still needs the leader lease).
    run_scheduler: bool = True
    leader_lease_s: float = 10.0
    registry_cache_dir: str | None = None
    repo_roots: tuple[str, ...] = field(default=())

    def validate(self) -> "ServerConfig":
        if not self.mongo_uri or not self.mongo_uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ConfigError(f"--mongo must be a MongoDB URI (mongodb://host:port/...), got {self.mongo_uri!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port}")
        if self.threads < 1:
            raise ConfigError("threads must be at least 1")
        if self.housekeeping_s <= 0 or self.offline_after_s <= 0 or self.leader_lease_s <= 0:
            raise ConfigError("housekeeping_s, offline_after_s and leader_lease_s must be positive")
        return self
