"""Log lines of one kind said once per interval, with a count of those left out."""

from __future__ import annotations

import logging

import pytest

from intake.receive.smtp import throttled_log
from intake.receive.smtp.throttled_log import ThrottledLog

LOGGER = logging.getLogger("chikanemail.test.throttled")


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER.name]


def test_repeats_within_the_interval_are_counted_and_named_in_the_next_line(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    errors = ThrottledLog(LOGGER, logging.ERROR, 60.0, clock=clock)
    with caplog.at_level(logging.ERROR, logger=LOGGER.name):
        for _ in range(250):
            errors.say("not stored OSError", "message not stored: %s", "OSError")
        clock.now += 59.9
        errors.say("not stored OSError", "message not stored: %s", "OSError")
        assert lines(caplog) == [
            "message not stored: OSError (0 more since the last such line; logged once per "
            "60 s)"]
        clock.now += 0.1
        errors.say("not stored OSError", "message not stored: %s", "OSError")
    assert lines(caplog)[1] == ("message not stored: OSError (250 more since the last such "
                                "line; logged once per 60 s)")
    assert all(record.levelno == logging.ERROR for record in caplog.records)


def test_each_kind_has_its_own_interval(caplog: pytest.LogCaptureFixture) -> None:
    errors = ThrottledLog(LOGGER, logging.WARNING, 60.0, clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger=LOGGER.name):
        errors.say("a", "kind %s", "a")
        errors.say("b", "kind %s", "b")
        errors.say("a", "kind %s", "a")
    assert [line.split(" (")[0] for line in lines(caplog)] == ["kind a", "kind b"]


def test_memory_stays_bounded_under_many_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttled_log, "MAX_KINDS", 8)
    clock = FakeClock()
    errors = ThrottledLog(LOGGER, logging.DEBUG, 60.0, clock=clock)
    for number in range(100):
        errors.say(f"client {number}", "refused")
    assert len(errors._said_at) <= 8
