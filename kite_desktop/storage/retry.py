"""When to try again: exponential backoff with jitter, honouring the server's Retry-After, with a cap.

Shared by the cloud backends. A test passes a policy with tiny delays; the app uses the defaults.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    """How many times one request is tried in all before its error is reported."""
    base: float = 1.0
    cap: float = 60.0
    max_retry_after: float = 300.0
    """A Retry-After longer than this is not slept through: the error is reported instead."""

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number ``attempt + 1`` (``attempt`` counts from 0)."""
        if retry_after is not None:
            return max(0.0, retry_after)
        ceiling = min(self.cap, self.base * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def sleep(self, attempt: int, retry_after: float | None = None) -> None:
        await asyncio.sleep(self.delay(attempt, retry_after))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


@dataclass(frozen=True)
class Failure:
    """What a backend makes of one failed attempt."""

    error: BaseException
    """What to raise when Kite gives up (already a KiteError with words for people)."""
    retry: bool = False
    refresh: bool = False
    """The token was refused (401): renew it once and try again."""
    retry_after: float | None = None
    throttle: bool = False
    """The account is being rate-limited (429): every request of the account waits, not only this one."""


class Pacer:
    """One account's pace. After a rate-limit answer every request of that account waits until the time the
    server named (or the back-off), so four transfers do not each hammer a server that said "slow down"."""

    def __init__(self) -> None:
        self._until = 0.0
        self.on_hold: Callable[[float], None] | None = None
        """Told how long the account waits, to say so next to its transfers."""

    def hold(self, seconds: float) -> None:
        until = time.monotonic() + max(0.0, seconds)
        if until > self._until:
            log.info("rate-limited: this account's requests wait %.1f s", seconds)
            self._until = until
            if self.on_hold is not None and seconds >= 1:
                self.on_hold(seconds)

    @property
    def remaining(self) -> float:
        return max(0.0, self._until - time.monotonic())

    async def wait(self) -> None:
        while (delay := self._until - time.monotonic()) > 0:
            await asyncio.sleep(delay)


class Tokens(Protocol):
    @property
    def access_token(self) -> str: ...

    def needs_refresh(self) -> bool: ...

    async def refresh(self, stale_token: str | None = None) -> None: ...


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    classify: Callable[[BaseException], Failure | None],
    policy: RetryPolicy,
    tokens: Tokens | None,
    what: str,
    pacer: Pacer | None = None,
) -> T:
    """Run ``attempt`` until it succeeds: the token renewed once on a 401, back-off on what ``classify`` calls
    retryable (honouring Retry-After, up to ``policy.max_retry_after``), and a clear error in the end.
    Exceptions ``classify`` does not know (None) pass through unchanged."""
    refreshed = False
    for number in range(policy.attempts):
        if pacer is not None:
            await pacer.wait()
        if tokens is not None and tokens.needs_refresh():
            await tokens.refresh()
        token = tokens.access_token if tokens is not None else None
        try:
            return await attempt()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            if failure.refresh and tokens is not None and not refreshed:
                refreshed = True
                await tokens.refresh(stale_token=token)
                continue
            waited_too_long = failure.retry_after is not None and failure.retry_after > policy.max_retry_after
            if failure.throttle and pacer is not None:
                # The account waits, but no longer than Kite would sleep through; after that the queue takes over.
                pacer.hold(min(policy.delay(number, failure.retry_after), policy.max_retry_after))
            if not failure.retry or waited_too_long or number + 1 >= policy.attempts:
                raise failure.error from None
            log.info("%s failed (%s); retrying", what, failure.error)
            if not (failure.throttle and pacer is not None):  # the pacer's wait is the back-off
                await policy.sleep(number, failure.retry_after)
    raise AssertionError("unreachable")
