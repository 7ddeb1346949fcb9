"""The server's settings: each defined once, here, with its default; a frozen, validated object.

Nothing here reads the environment; ``suanwang server`` fills the fields from its flags,
``SUANWANG_*`` variables and the config file (each option's default is ``default(name)``),
then calls ``scheduler.server.serve(config)``. The parts that run with settings of their own
(the notifier's ``NotifyConfig``, the SMTP settings, the registry) take their defaults from
here too; ``tests/test_settings.py`` checks that every setting read anywhere is a field here
(or of ``worker.config.WorkerConfig``).
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields

from fsm.errors import ConfigError

#: Largest request body the server reads; larger ones get 413 before they are read.
DEFAULT_MAX_BODY_BYTES = 16 << 20
#: How mail reaches the SMTP server.
TLS_MODES = ("none", "starttls", "ssl")
#: Largest data object (an upload streams through GridFS; waitress spools it to disk first).
DEFAULT_MAX_DATA_BYTES = 64 << 30
#: Highest task priority each role may set (a role not named: no cap beyond the task limit).
DEFAULT_PRIORITY_CAPS = {"business": 100, "general": 100}


@dataclass(frozen=True)
class ServerConfig:
    """Everything one ``suanwang server`` process needs."""

    mongo_uri: str
    #: The database; default: the URI's path, else ``suanwang``.
    db_name: str | None = None
    host: str = "127.0.0.1"
    #: 0 picks a free port (tests).
    port: int = 8080
    #: waitress worker threads (requests served at once).
    threads: int = 8
    #: Larger request bodies get 413 JSON before they are read.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Signs web sessions; when not given, generated once and kept in MongoDB (``settings``),
    #: so every server process and restart shares it.
    secret_key: str | None = None
    #: When given, this token works for the user ``admin`` (created on first start).
    admin_token: str | None = None
    #: A worker not seen for this long is marked offline.
    offline_after_s: float = 10.0
    #: Period of the housekeeping job (offline workers, expired leases, due tasks).
    housekeeping_s: float = 1.0
    #: Whether this process may run the periodic jobs (it still needs the leader lease).
    run_scheduler: bool = True
    #: Lifetime of the leader lease in ``locks``; renewed every third of it.
    leader_lease_s: float = 10.0
    #: How long a request waits for MongoDB before it answers 503 (server selection timeout).
    mongo_timeout_s: float = 5.0
    #: When given, ``/metrics`` needs ``Authorization: Bearer <metrics_token>`` (or any user's
    #: token); when not, it is open, like most Prometheus exporters.
    metrics_token: str | None = None
    #: E-mail notifications (none sent without smtp_host); webhooks need no setting.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    #: none | starttls | ssl
    smtp_tls: str = "none"
    mail_from: str = "suanwang@localhost"
    smtp_timeout_s: float = 10.0
    #: Notifications (``scheduler.notify``): tries of one delivery before it is recorded as failed,
    #: the wait before the second try (doubled for each later one, up to the max), the webhook
    #: timeout, the period of the worker / queue checks, an idle sender's wait, how long a
    #: delivery being sent by a process that died stays claimed, and the senders at once.
    notify_max_attempts: int = 5
    notify_backoff_s: float = 5.0
    notify_backoff_max_s: float = 600.0
    notify_webhook_timeout_s: float = 10.0
    notify_check_s: float = 30.0
    notify_poll_s: float = 1.0
    notify_sending_lease_s: float = 120.0
    notify_senders: int = 2
    #: The registry's checkout cache and the local repository roots it may read (see ``registry``),
    #: and how long one git command may take.
    registry_cache_dir: str | None = None
    repo_roots: tuple[str, ...] = field(default=())
    registry_git_timeout_s: float = 120.0
    #: Largest data object one upload may store (POST /api/v1/data), and each user's storage
    #: quota in bytes (None: unlimited); data no task refers to is deleted after this many days
    #: (None: kept).
    max_data_bytes: int = DEFAULT_MAX_DATA_BYTES
    data_quota_bytes: int | None = None
    data_retention_days: float | None = 30.0
    #: Highest priority a role may give a task it publishes, schedules or re-prioritises ({role: cap}).
    priority_caps: dict = field(default_factory=lambda: dict(DEFAULT_PRIORITY_CAPS))

    #: Credits (``scheduler.credits``): a balance under this many credits raises one ``credits.low``
    #: event (again only after a top-up); how often the leader settles ended priced tasks.
    credits_low_threshold: float = 10.0
    credits_settle_s: float = 5.0

    #: Retention (``scheduler.retention``): finished tasks older than this many days leave
    #: ``tasks`` (None: kept for ever), moved to ``tasks_archive`` or deleted (``retention_mode``);
    #: finished tasks keep their newest ``history_cap`` history entries and ``attempts_cap`` attempts.
    retention_days: float | None = None
    retention_mode: str = "archive"
    history_cap: int = 100
    attempts_cap: int = 20
    #: Period of the retention job, and the most tasks it moves per batch.
    retention_every_s: float = 60.0
    retention_batch: int = 1000

    def validate(self) -> "ServerConfig":
        """Raise ``ConfigError`` naming the first bad setting; return self."""
        if not isinstance(self.mongo_uri, str) or not self.mongo_uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ConfigError(f"--mongo must be a MongoDB URI (mongodb://host:port/...), got {self.mongo_uri!r}")
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError(f"host must be a host name or address, got {self.host!r}")
        _int(self, "port", 0, 65535)
        _int(self, "threads", 1, 1024)
        _int(self, "max_body_bytes", 1024, 1 << 40)
        _int(self, "max_data_bytes", 1024, 1 << 50)
        if self.data_quota_bytes is not None:
            _int(self, "data_quota_bytes", 0, 1 << 50)
        if self.data_retention_days is not None and (isinstance(self.data_retention_days, bool) or not isinstance(
                self.data_retention_days, (int, float)) or not self.data_retention_days > 0):
            raise ConfigError(f"data_retention_days must be a positive number or None, got {self.data_retention_days!r}")
        for name in ("offline_after_s", "housekeeping_s", "leader_lease_s", "mongo_timeout_s", "smtp_timeout_s",
                     "notify_backoff_s", "notify_backoff_max_s", "notify_webhook_timeout_s", "notify_check_s",
                     "notify_poll_s", "notify_sending_lease_s", "registry_git_timeout_s", "credits_settle_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        for name in ("secret_key", "admin_token", "metrics_token"):
            value = getattr(self, name)
            if value not in (None, "") and (not isinstance(value, str) or len(value) < 8):
                raise ConfigError(f"{name} must be a string of at least 8 characters when given")
        if self.retention_days is not None and (isinstance(self.retention_days, bool) or not isinstance(
                self.retention_days, (int, float)) or not self.retention_days > 0):
            raise ConfigError(f"retention_days must be a positive number of days, got {self.retention_days!r}")
        if isinstance(self.credits_low_threshold, bool) or not isinstance(self.credits_low_threshold, (int, float)) \
                or not self.credits_low_threshold >= 0:
            raise ConfigError("credits_low_threshold must be a number of credits >= 0, got "
                              f"{self.credits_low_threshold!r}")
        if self.retention_mode not in ("archive", "delete"):
            raise ConfigError(f"retention_mode must be archive or delete, got {self.retention_mode!r}")
        _int(self, "history_cap", 1, 1 << 20)
        _int(self, "attempts_cap", 1, 1 << 20)
        _int(self, "retention_batch", 1, 100_000)
        if isinstance(self.retention_every_s, bool) or not isinstance(self.retention_every_s, (int, float)) \
                or not self.retention_every_s > 0:
            raise ConfigError(f"retention_every_s must be a positive number of seconds, got {self.retention_every_s!r}")
        caps = self.priority_caps
        if not isinstance(caps, dict) or not all(isinstance(r, str) and isinstance(c, int) and not isinstance(c, bool)
                                                 for r, c in caps.items()):
            raise ConfigError(f"priority_caps must map role names to integers, got {caps!r}")
        if not isinstance(self.run_scheduler, bool):
            raise ConfigError("run_scheduler must be true or false")
        _int(self, "smtp_port", 1, 65535)
        _int(self, "notify_max_attempts", 1, 100)
        _int(self, "notify_senders", 1, 64)
        if self.smtp_tls not in TLS_MODES:
            raise ConfigError(f"smtp_tls must be one of {', '.join(TLS_MODES)}, got {self.smtp_tls!r}")
        if not isinstance(self.repo_roots, (tuple, list)) or not all(isinstance(r, str) and r for r in self.repo_roots):
            raise ConfigError(f"repo_roots must be a list of directory paths, got {self.repo_roots!r}")
        return self


def default(name: str):
    """The default of the ``ServerConfig`` field ``name`` (``KeyError`` for a setting that does not exist)."""
    spec = {f.name: f for f in fields(ServerConfig)}[name]
    return spec.default_factory() if spec.default is MISSING else spec.default


def _int(config: ServerConfig, name: str, lo: int, hi: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")
