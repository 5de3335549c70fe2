"""Bandwidth limits and the per-account pacer, on a clock the test controls (no real waiting)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kite_desktop.core.errors import ConnectionUnavailableError
from kite_desktop.storage import retry, throttle
from kite_desktop.storage.retry import Failure, Pacer, RetryPolicy, with_retries
from kite_desktop.storage.throttle import BURST, Limits, Throttle

MiB = 1024 * 1024
REAL_SLEEP = asyncio.sleep


class Clock:
    """time.monotonic and asyncio.sleep for the module under test: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await REAL_SLEEP(0)  # a real suspension: a sleeper can be cancelled, as in the app
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    for module in (throttle, retry):
        monkeypatch.setattr(module.time, "monotonic", fake.monotonic)
        monkeypatch.setattr(module.asyncio, "sleep", fake.sleep)
    return fake


def test_a_limit_spreads_bytes_over_time(clock: Clock) -> None:
    budget = Throttle(1 * MiB)  # 1 MiB/s

    async def send() -> None:
        for _ in range(10):
            await budget.consume(MiB)

    asyncio.run(send())
    # 10 MiB at 1 MiB/s take 10 s, less the one-second burst allowed at full speed.
    assert sum(clock.slept) == pytest.approx(10 - BURST)


def test_transfers_share_one_limit(clock: Clock) -> None:
    budget = Throttle(2 * MiB)

    async def send(chunks: int) -> None:
        for _ in range(chunks):
            await budget.consume(MiB)

    async def both() -> None:
        await asyncio.gather(send(4), send(4))

    asyncio.run(both())
    assert clock.now - 1000.0 == pytest.approx(8 / 2 - BURST)  # 8 MiB at 2 MiB/s together, not each


def test_no_limit_never_waits_and_a_new_limit_applies_at_once(clock: Clock) -> None:
    limits = Limits()

    async def send() -> None:
        await limits.up.consume(100 * MiB)
        limits.set(up_kib=1024, down_kib=0)
        await limits.up.consume(3 * MiB)
        await limits.down.consume(100 * MiB)

    asyncio.run(send())
    assert sum(clock.slept) == pytest.approx(3 - BURST)


def test_bytes_that_were_never_sent_give_their_time_back(clock: Clock) -> None:
    budget = Throttle(1 * MiB)

    async def paused_then_resumed() -> None:
        await budget.consume(MiB)  # the burst is used up
        waiting = asyncio.ensure_future(budget.consume(100 * MiB))  # a big chunk waits for its slot…
        await REAL_SLEEP(0)
        assert clock.slept  # it is waiting
        waiting.cancel()  # …and the transfer is paused before it is sent
        with pytest.raises(asyncio.CancelledError):
            await waiting
        clock.slept.clear()
        await budget.consume(MiB)

    asyncio.run(paused_then_resumed())
    assert sum(clock.slept) <= 1.0  # not 100 s behind the chunk that never went


def test_a_rate_limit_holds_every_request_of_the_account(clock: Clock) -> None:
    """One request gets 429 with Retry-After: 30; another transfer of the same account waits out the same 30 s
    instead of going on (and getting 429s of its own)."""
    pacer = Pacer()
    policy = RetryPolicy(attempts=3)
    started: list[tuple[str, float]] = []
    answers = iter([Exception("429"), "ok"])

    async def limited() -> str:
        started.append(("limited", clock.now))
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def other() -> str:
        started.append(("other", clock.now))
        return "ok"

    def classify(exc: BaseException) -> Failure | None:
        return Failure(ConnectionUnavailableError("slow down"), retry=True, retry_after=30.0, throttle=True)

    async def scenario() -> Any:
        first = await with_retries(limited, classify, policy, None, "upload", pacer)
        second = await with_retries(other, classify, policy, None, "upload", pacer)
        return first, second

    assert asyncio.run(scenario()) == ("ok", "ok")
    assert started == [("limited", 1000.0), ("limited", 1030.0), ("other", 1030.0)]


def test_a_long_retry_after_is_reported_and_the_account_waits_at_most_the_cap(clock: Clock) -> None:
    """An hour's Retry-After is not slept through: the error goes to the queue (which tries again later), and
    the account's other requests wait the cap, not the hour (they would sit as "Transferring" at 0 B/s)."""
    pacer = Pacer()
    policy = RetryPolicy(attempts=3, max_retry_after=300)

    async def attempt() -> None:
        raise RuntimeError("429")

    def classify(exc: BaseException) -> Failure | None:
        return Failure(ConnectionUnavailableError("slow down"), retry=True, retry_after=3600.0, throttle=True)

    with pytest.raises(ConnectionUnavailableError):
        asyncio.run(with_retries(attempt, classify, policy, None, "upload", pacer))
    assert pacer.remaining == pytest.approx(300.0)


def test_a_retry_after_that_is_not_a_finite_number_is_ignored() -> None:
    assert retry.parse_retry_after("inf") is None
    assert retry.parse_retry_after("nan") is None
    assert retry.parse_retry_after("1e400") is None
    assert retry.parse_retry_after("12") == 12.0
