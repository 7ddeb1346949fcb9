"""Which actions a task offers in each status: derived from the FSM's transition table (no database)."""
import pytest

from fsm.states import ACTION_TARGETS, FINAL, LIVE, TRANSITIONS, Status, actions_allowed


@pytest.mark.parametrize("status,expected", [
    ("pending", ["priority", "enable", "disable", "cancel"]),
    ("queued", ["priority", "enable", "disable", "cancel"]),
    ("running", ["priority", "enable", "disable", "cancel"]),
    ("succeeded", []),
    ("failed", ["requeue"]),
    ("cancelled", ["requeue"]),
])
def test_actions_by_status(status, expected):
    assert actions_allowed(status) == expected


def test_every_offered_move_is_a_transition_of_the_table():
    for status in Status:
        for action in actions_allowed(status):
            target = ACTION_TARGETS[action]
            assert (target is None and status in LIVE) or target in TRANSITIONS[status]
            assert not (action == "requeue" and status not in FINAL)
