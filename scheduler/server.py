"""`suanwang server`: the app under waitress (a production WSGI server) plus the leader loop."""
from __future__ import annotations

import logging
import signal
import threading

from waitress.server import create_server

from fsm.store import Store, database
from scheduler.app import create_app
from scheduler.config import ServerConfig
from scheduler.housekeeping import Leader

log = logging.getLogger("suanwang.server")


def build(config: ServerConfig):
    """The store, app, WSGI server and (not yet started) leader of one server process."""
    config.validate()
    store = Store(database(config.mongo_uri, config.db_name))
    app = create_app(config, store)
    http = create_server(app, host=config.host, port=config.port, threads=config.threads,
                         ident="suanwang", clear_untrusted_proxy_headers=True)
    leader = Leader(store, config.mongo_uri, lease_s=config.leader_lease_s, housekeeping_s=config.housekeeping_s,
                    offline_after_s=config.offline_after_s) if config.run_scheduler else None
    if leader is not None:
        _plug_features(leader, store, app)
    return store, app, http, leader


def _plug_features(leader: Leader, store: Store, app) -> None:
    """Schedules and notifications run beside housekeeping, in the leader only."""
    try:
        from scheduler import schedules
    except ImportError:
        schedules = None
    if schedules is not None and hasattr(schedules, "on_lead"):
        leader.on_lead.append(lambda sched: schedules.on_lead(sched, store, leader.uri))
    try:
        from scheduler import notify
    except ImportError:
        notify = None
    if notify is not None and hasattr(notify, "on_lead"):
        leader.on_lead.append(lambda sched: notify.on_lead(sched, store, app.config))


def serve(config: ServerConfig) -> int:
    store, app, http, leader = build(config)
    stop = threading.Event()

    def ask_stop(signum, frame):
        if not stop.is_set():
            stop.set()
            threading.Thread(target=http.close, daemon=True).start()

    signal.signal(signal.SIGTERM, ask_stop)
    signal.signal(signal.SIGINT, ask_stop)
    if leader is not None:
        leader.start()
    log.info("serving on http://%s:%s (API under /api/v1)", config.host, http.effective_port)
    try:
        http.run()
    except OSError:
        if not stop.is_set():
            raise
    finally:
        if leader is not None:
            leader.stop()
        store.close()
        log.info("server stopped")
    return 0
