"""The registry's stored verbs live in ``fsm.store.functions`` (only ``fsm.store`` talks to MongoDB);
these names stay importable from here."""
from fsm.store.functions import (FUNCTION_INDEXES, NEWEST, SUMMARY, FunctionStore, RepoStore,  # noqa: F401
                                 ensure_indexes, function_id, new_serial, now, registry_stores)
