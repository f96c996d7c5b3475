"""A per-client token bucket, in memory (one process; each uvicorn worker keeps its own)."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["TokenBucketLimiter"]


class TokenBucketLimiter:
    """Token buckets keyed by client (IP address).

    Each key holds up to ``burst`` tokens and regains ``rate_per_minute / 60`` tokens per second;
    a request takes one token or is refused. Keys idle long enough to be full again are
    forgotten first when more than ``max_keys`` are tracked, so memory stays bounded.

    Example:
        >>> limiter = TokenBucketLimiter(rate_per_minute=60, burst=2)
        >>> limiter.acquire("1.2.3.4"), limiter.acquire("1.2.3.4"), limiter.acquire("1.2.3.4")[0]
        ((True, 0.0), (True, 0.0), False)
    """

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create the limiter.

        Args:
            rate_per_minute: sustained requests per minute per key; 0 disables limiting.
            burst: bucket size (requests allowed at once).
            max_keys: most keys remembered.
            clock: seconds, monotonic (injectable for tests).
        """
        if rate_per_minute < 0 or burst < 1:
            raise ValueError(f"need rate_per_minute >= 0 and burst >= 1, got {rate_per_minute}, {burst}")
        self.rate_per_s = rate_per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, t)

    @property
    def enabled(self) -> bool:
        """False when the rate is 0 (every request allowed)."""
        return self.rate_per_s > 0

    def acquire(self, key: str) -> tuple[bool, float]:
        """Take a token for ``key``.

        Returns:
            ``(allowed, retry_after_s)``: whether the request may proceed and, if not, the
            seconds until a token is available.
        """
        if not self.enabled:
            return True, 0.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)  # most recently used last
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        retry = 0.0 if allowed else (1.0 - tokens) / self.rate_per_s
        return allowed, retry

    @staticmethod
    def retry_after_header(seconds: float) -> str:
        """``Retry-After`` value (whole seconds, at least 1)."""
        return str(max(1, math.ceil(seconds)))
