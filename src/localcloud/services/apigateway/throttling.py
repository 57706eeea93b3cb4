"""Route throttling: API Gateway's token bucket, per route, from the stage's default route settings."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ACCOUNT_BURST_LIMIT", "ACCOUNT_RATE_LIMIT", "Throttle", "TokenBucket"]

# API Gateway's default account-level quotas (per Region): what a route gets for a limit its settings leave out.
ACCOUNT_RATE_LIMIT = 10_000.0
ACCOUNT_BURST_LIMIT = 5_000


class TokenBucket:
    """Holds up to ``burst`` tokens (full at first) and gains ``rate`` a second; a request takes one or is refused."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 0 or burst < 0:
            raise ValueError(f"rate and burst must not be negative, not {rate} and {burst}")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    @property
    def tokens(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = now

    def take(self) -> bool:
        """Take a token: False (429) if there is none."""
        with self._lock:
            self._refill()
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


class Throttle:
    """One bucket per route key, each with the same (default route) settings."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> Throttle | None:
        """From ``DefaultRouteSettings`` (``ThrottlingRateLimit``, ``ThrottlingBurstLimit``); None: no throttling."""
        if not settings:
            return None
        rate, burst = settings.get("ThrottlingRateLimit"), settings.get("ThrottlingBurstLimit")
        if rate is None and burst is None:
            return None
        return cls(
            ACCOUNT_RATE_LIMIT if rate is None else float(rate),
            ACCOUNT_BURST_LIMIT if burst is None else int(float(burst)),  # template parameters come as strings
        )

    def allow(self, route_key: str) -> bool:
        with self._lock:
            bucket = self._buckets.get(route_key)
            if bucket is None:
                bucket = self._buckets[route_key] = TokenBucket(self.rate, self.burst, self._clock)
        return bucket.take()
