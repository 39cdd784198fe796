"""What the S3 fault proxy does to a request: fixed rules, and a random mix of faults."""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from upload_jobs.storage.local_s3 import REQUEST_KINDS, S3Request

__all__ = ["Fault", "FaultRule", "RandomFaults"]


@dataclass
class FaultRule:
    """Which requests to break (or hold) and how; `remaining=None` applies to every match.

    `delay_seconds` holds a matching request that long (its body already received) before the
    rule acts; `forward=True` then passes it upstream instead of answering with a fault.
    `after_kind` is checked by the proxy, which knows what it has seen.
    """

    status: int
    code: str
    message: str
    remaining: int | None
    methods: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    min_part_number: int | None = None
    drop_connection: bool = False
    delay_seconds: float = 0.0
    forward: bool = False
    # Close the connection after reading half the request body (or at once, without one).
    drop_mid_body: bool = False
    # Only requests after one of this kind was seen (e.g. the HEAD that verifies an upload).
    after_kind: str | None = None
    # Only requests about this multipart upload (its parts, listing, completion, abort).
    upload_id: str | None = None
    # Only requests with this header (lower-case name) whose value matches the pattern whole.
    header: tuple[str, str] | None = None
    # With `forward`: one byte of the body is changed on the way (its Content-MD5 is not).
    corrupt_body: bool = False

    def matches(self, request: S3Request, headers: dict[str, str] | None = None) -> bool:
        """Whether this rule applies to `request` with `headers` (ignoring how many uses are
        left)."""
        if self.methods is not None and request.method not in self.methods:
            return False
        if self.kinds is not None and request.kind not in self.kinds:
            return False
        if self.upload_id is not None and request.upload_id != self.upload_id:
            return False
        if self.header is not None:
            name, pattern = self.header
            value = (headers or {}).get(name)
            if value is None or re.fullmatch(pattern, value) is None:
                return False
        if self.min_part_number is not None:
            return request.part_number is not None and request.part_number >= self.min_part_number
        return True


class Fault(StrEnum):
    """The faults a random mix draws from, as a flaky S3 endpoint shows them."""

    SLOW_DOWN = "503 SlowDown"
    INTERNAL_ERROR = "500 InternalError"
    DROP_MID_BODY = "connection dropped mid-body"
    SLOW_RESPONSE = "slow response"


@dataclass
class RandomFaults:
    """Breaks a `share` of the requests, each with a fault drawn evenly from `faults`.

    Seeded, so a run's sequence of draws repeats (the order requests arrive in may not).
    """

    share: float
    seed: int
    faults: Sequence[Fault] = tuple(Fault)
    slow_seconds: float = 1.0
    kinds: frozenset[str] | None = None
    drawn: Counter[Fault] = field(default_factory=Counter)
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.share <= 1:
            raise ValueError(f"share must be between 0 and 1, got {self.share}")
        self._rng = random.Random(self.seed)
        self.kinds = kinds_set(set(self.kinds)) if self.kinds is not None else None

    def draw(self, request: S3Request) -> FaultRule | None:
        """The rule for this request: a fault for `share` of them, else None (forward it)."""
        if self.kinds is not None and request.kind not in self.kinds:
            return None
        with self._lock:
            if self._rng.random() >= self.share:
                return None
            fault = self._rng.choice(list(self.faults))
            self.drawn[fault] += 1
        return self._rule_for(fault)

    def _rule_for(self, fault: Fault) -> FaultRule:
        if fault is Fault.SLOW_DOWN:
            return FaultRule(503, "SlowDown", "Please reduce your request rate.", 1)
        if fault is Fault.INTERNAL_ERROR:
            return FaultRule(500, "InternalError", "We encountered an internal error.", 1)
        if fault is Fault.DROP_MID_BODY:
            return FaultRule(0, "", "", 1, drop_mid_body=True)
        return slow_rule(1, self.slow_seconds, None, None, None)


def slow_rule(
    n: int | None,
    delay_seconds: float,
    methods: set[str] | None,
    kinds: set[str] | None,
    min_part_number: int | None,
    after_kind: str | None = None,
) -> FaultRule:
    """A rule that holds matching requests, then forwards them (status and code go unused)."""
    if delay_seconds <= 0:
        raise ValueError(f"delay_seconds must be positive for a slow rule, got {delay_seconds}")
    if after_kind is not None:
        kinds_set({after_kind})  # checked like the others
    return FaultRule(
        200,
        "",
        "",
        n,
        methods_set(methods),
        kinds_set(kinds),
        min_part_number,
        delay_seconds=delay_seconds,
        forward=True,
        after_kind=after_kind,
    )


def delay(seconds: float) -> float:
    """`seconds`, checked: a negative hold is a typo, not "no delay"."""
    if seconds < 0:
        raise ValueError(f"delay_seconds cannot be negative, got {seconds}")
    return seconds


def methods_set(values: set[str] | None) -> frozenset[str] | None:
    """HTTP methods, upper-cased; None matches every method."""
    return frozenset(v.upper() for v in values) if values is not None else None


def kinds_set(values: set[str] | None) -> frozenset[str] | None:
    """Request kinds (`put_object`, `upload_part`, ...), checked; None matches every kind."""
    # A misspelt kind would match nothing and leave a fault test silently fault-free.
    unknown = set(values or ()) - set(REQUEST_KINDS)
    if unknown:
        raise ValueError(f"unknown request kinds {sorted(unknown)}; known: {REQUEST_KINDS}")
    return frozenset(values) if values is not None else None
