"""fsm.health: when a machine is quarantined for a function (pure, table-driven)."""
import pytest

from fsm.health import HealthPolicy, Record, slower_than_best, verdict

P = HealthPolicy(consecutive_failures=3, window=10, min_attempts=6, min_success_rate=0.3, cooldown_s=60)


@pytest.mark.parametrize("outcomes, expected", [
    ([], None),
    ([False, False], None),
    ([False, False, False], "3 failed attempts in a row"),
    ([False, False, True, False, False], None),                 # a success resets the run
    ([True, False, False, True, False, False], None),           # 2/6 = 33%: not under 30%
    ([False, True, False, False, True, False, False, False], "3 failed attempts in a row"),
    ([True, False, False, True, False, False, True, False, False, False], "3 failed attempts in a row"),
    ([False, False, True] * 3, None),                           # 3/9 = 33%
    ([False, False, True, False, False, False, True, False, False, True], None),  # 3/10 = 30%: not under
])
def test_verdicts(outcomes, expected):
    record = Record(recent=[])
    for ok in outcomes:
        record.add(ok, P.window)
    assert verdict(record, P) == expected


def test_low_success_rate_without_a_run_of_failures():
    record = Record(recent=[])
    for ok in [False, False, True, False, False, True, False, False]:  # 2/8 = 25% < 30%, never 3 in a row
        record.add(ok, P.window)
    assert record.consecutive_failures == 2
    assert verdict(record, P) == "success rate 25% over the last 8 attempts (under 30%)"


def test_window_forgets_old_outcomes():
    record = Record(recent=[])
    for ok in [False] * 2 + [True] * 12:
        record.add(ok, P.window)
    assert record.recent == [True] * 10 and verdict(record, P) is None


def test_speed_comparison():
    assert slower_than_best(3.0, 1.0) and not slower_than_best(1.2, 1.0)
    assert not slower_than_best(None, 1.0) and not slower_than_best(2.0, None)
