"""A mongod restart during a download and during an upload through the API: the client ends with
the whole verified file or a clear error, never a silently short one (own mongod, real server)."""
from __future__ import annotations

import hashlib
import threading
import time

from fsm.store import Store, database
from fsm.store.embedded import EmbeddedMongo
from suanwang import transfer
from suanwang.client import Client
from tests.procs import Cluster
from tests.test_data_e2e import Pattern


def test_mongod_restart_mid_download_and_mid_upload(tmp_path):
    mongo = EmbeddedMongo(tmp_path / "db")
    uri = mongo.start()
    cluster = Cluster(uri.replace("/?", "/faults?"), tmp_path)
    store = Store(database(cluster.uri))
    try:
        cluster.start_server()
        client = Client(cluster.url.rsplit("/api/v1", 1)[0], cluster.token)
        meta = store.data.upload(Pattern(200 << 20, b"down"), name="big.bin", owner="admin")

        # When mongod restarts while 200 MB stream down
        seen, restarted = [0], threading.Event()

        def progress(n):
            seen[0] += n
            if seen[0] >= 40 << 20 and not restarted.is_set():
                restarted.set()
                mongo.stop()
                time.sleep(1.0)
                mongo.start()

        got = transfer.download(client, f"/data/{meta['id']}/content", tmp_path / "big.bin", progress)
        # Then the file is whole and verified (resumed with a Range request)
        assert restarted.is_set()
        assert got["size"] == 200 << 20 and got["sha256"] == meta["sha256"]
        digest = hashlib.sha256((tmp_path / "big.bin").read_bytes()).hexdigest()
        assert digest == meta["sha256"] and not (tmp_path / "big.bin.part").exists()

        # When mongod is down as an upload begins, and back a few seconds later
        source = tmp_path / "up.bin"
        with open(source, "wb") as f:
            piece = Pattern(50 << 20, b"up")
            while block := piece.read(1 << 20):
                f.write(block)
        mongo.stop()
        result: dict = {}
        uploading = threading.Thread(target=lambda: result.update(transfer.upload(client, source, "up.bin")))
        uploading.start()
        time.sleep(3.0)
        mongo.start()  # from this thread: mongod dies with the thread that started it
        uploading.join(120)
        up = result
        # Then it is stored once, whole
        assert up["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest() and up["size"] == 50 << 20
        assert store.data.files.count_documents({"filename": "up.bin"}) == 1
    finally:
        cluster.close()
        store.close()
        mongo.stop()
