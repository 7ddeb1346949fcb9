"""Run by test_store_claim in separate processes: claim and finish until the queue is empty."""
import json
import sys

from fsm.store import Claimant, Store, database


def main(uri: str, name: str, db_name: str) -> None:
    store = Store(database(uri, db_name), create_indexes=False)
    got = []
    who = Claimant(name=name, distinct_grace_s=-1)
    while True:
        claim = store.tasks.claim_next(who)
        if claim is None:
            break
        store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result=name, worker=name)
        got.append(claim.task_id)
    print(json.dumps(got))


if __name__ == "__main__":
    main(*sys.argv[1:])
