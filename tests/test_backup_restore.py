"""docs/OPERATIONS.md's backup and restore of the embedded MongoDB, done as written: a copy of the
data directory under fsyncLock (scripts/backup_mongo.py) restored into a fresh mongod on another
port finds every task and result; writes made after the backup are not in it."""
from __future__ import annotations

import subprocess
import sys

import pytest

from fsm.store import Store, database
from fsm.store.embedded import EmbeddedMongo
from fsm.store.spec import validate
from fsm.store.tasks import Claimant
from tests.procs import ROOT

pytestmark = pytest.mark.slow


def test_a_backup_under_fsync_lock_restores_every_task_and_result(tmp_path):
    # Given an embedded MongoDB with tasks, some finished with results, while writes go on,
    with EmbeddedMongo(tmp_path / "db") as original:
        store = Store(database(original.uri, "suanwang"))
        tasks = store.tasks
        tasks.insert([tasks.document(validate({"function": "echo", "args": [i], "id": f"t{i:03}"}), "admin")
                      for i in range(200)])
        worker = Claimant("w1", distinct_grace_s=-1)
        for i in range(120):
            claim = tasks.claim_next(worker)
            tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result={"n": i, "blob": "x" * 1000},
                                 worker="w1")
        expected = {d["_id"]: (d["status"], d.get("result")) for d in store.db.tasks.find({})}
        # when it is backed up as docs/OPERATIONS.md says,
        out = subprocess.run([sys.executable, str(ROOT / "scripts" / "backup_mongo.py"), "--mongo", original.uri,
                              "--db-path", str(tmp_path / "db"), "--to", str(tmp_path / "backup")],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert "backed up" in out.stdout and "writes waited" in out.stdout
        # (the node takes writes again after the copy; those are not in the backup)
        tasks.insert([tasks.document(validate({"function": "echo", "id": "after-backup"}), "admin")])
        store.db.client.close()

    # then a fresh mongod on the copy, on another port, has every task and result of the moment of the backup
    with EmbeddedMongo(tmp_path / "backup") as restored:
        db = database(restored.uri, "suanwang")
        found = {d["_id"]: (d["status"], d.get("result")) for d in db.tasks.find({})}
        assert found == expected
        assert sum(1 for status, _ in found.values() if status == "succeeded") == 120
        assert db.tasks.find_one({"_id": "after-backup"}) is None
        # and it takes writes: a working primary, not a read-only copy
        Store(db).tasks.insert([Store(db).tasks.document(validate({"function": "noop"}), "admin")])
        db.client.close()


def test_the_backup_refuses_to_overwrite_or_copy_a_non_database(tmp_path):
    (tmp_path / "dest").mkdir()
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "backup_mongo.py"), "--mongo",
                          "mongodb://127.0.0.1:1", "--db-path", str(tmp_path), "--to", str(tmp_path / "dest")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "exists" in out.stderr
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "backup_mongo.py"), "--mongo",
                          "mongodb://127.0.0.1:1", "--db-path", str(tmp_path), "--to", str(tmp_path / "new")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "not a mongod data directory" in out.stderr
