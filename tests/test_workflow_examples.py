"""The workflow examples run on a real server and worker: map-reduce both ways, and the URL fetcher."""
from collections import Counter

import pytest

from examples.workflows import map_reduce
from suanwang import Client
from tests.test_workflows import Counting

TEXT = ["the quick brown fox", "jumps over the lazy dog", "the dog sleeps"] * 40


@pytest.fixture
def client(cluster):
    cluster.start_server()
    cluster.start_worker("w1", concurrency=2, heartbeat=0.3)
    with Client(f"http://127.0.0.1:{cluster.port}", cluster.token) as c:
        yield c


def expected(top):
    counts = Counter(w for line in TEXT for w in line.split() if len(w) >= 2)
    return [[w, n] for w, n in counts.most_common(top)]


@pytest.mark.parametrize("in_task", [False, True])
def test_map_reduce_over_chunks(client, in_task):
    assert map_reduce.run(client, TEXT, 6, top=3, in_task=in_task) == expected(3)


def test_the_url_fetcher_fetches_concurrently(client):
    server = Counting()
    try:
        urls = [f"http://127.0.0.1:{server.port}/?n={i}" for i in range(60)] + ["http://127.0.0.1:9/"]
        task = client.submit("examples.workflows.fetch_urls:fetch_all", urls, concurrency=30)
        rows = task.result(timeout=120)
    finally:
        server.close()
    assert [r["url"] for r in rows] == urls
    assert sum(r["status"] == 200 for r in rows) == 60 and rows[-1]["error"]
    assert server.peak >= 20 and task.progress()["fraction"] == 1.0
