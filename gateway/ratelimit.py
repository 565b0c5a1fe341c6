"""Per-key token buckets, in memory (one gateway process; limits restart with it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limit:
    rate_per_s: float  # tokens added per second
    burst: int  # bucket size

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")


@dataclass
class TokenBucket:
    """Holds up to `limit.burst` tokens, refilled at `limit.rate_per_s`; one request costs one."""

    limit: Limit
    updated: float
    tokens: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.limit.burst)  # a new bucket starts full

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.rate_per_s)
        self.updated = max(self.updated, now)

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take `cost` tokens: 0.0 when granted, else the seconds until it would be."""
        self._refill(now)
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.limit.rate_per_s

    def charge(self, now: float, cost: float) -> None:
        """Take `cost` tokens unconditionally, going into debt when short.

        Used for the extra calls of a JSON-RPC batch: refusing a batch larger than the
        burst would refuse it forever, while debt makes the key wait it off later, so the
        sustained rate still holds.
        """
        self._refill(now)
        self.tokens -= cost


class RateLimiter:
    """One bucket per key id, with the limit of the key's role."""

    def __init__(self, limits: dict[str, Limit]) -> None:
        self._limits = limits
        self._buckets: dict[str, TokenBucket] = {}

    def _bucket(self, key_id: str, role: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key_id)
        limit = self._limits[role]
        if bucket is None or bucket.limit != limit:
            bucket = self._buckets[key_id] = TokenBucket(limit, now)
        return bucket

    def take(self, key_id: str, role: str, now: float, cost: float = 1.0) -> float:
        """0.0 when the request may go, else the seconds until it could (Retry-After)."""
        return self._bucket(key_id, role, now).take(now, cost)

    def charge(self, key_id: str, role: str, now: float, cost: float) -> None:
        self._bucket(key_id, role, now).charge(now, cost)

    def headers(self, key_id: str, role: str, now: float) -> dict[str, str]:
        """The key's quota as the IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers):
        the policy is the role's bucket (q requests, refilled in w seconds), the state what
        is left (r requests, t seconds until the next one)."""
        bucket = self._bucket(key_id, role, now)
        bucket.take(now, cost=0.0)  # refill to now, take nothing
        limit = bucket.limit
        remaining = max(0, math.floor(bucket.tokens))
        wait_s = 0.0 if remaining else (1.0 - bucket.tokens) / limit.rate_per_s
        window_s = max(1, math.ceil(limit.burst / limit.rate_per_s))
        return {
            "RateLimit-Policy": f'"{role}";q={limit.burst};w={window_s}',
            "RateLimit": f'"{role}";r={remaining};t={math.ceil(wait_s)}',
        }

    def forget(self, keep: set[str]) -> None:
        """Drop the buckets of keys no longer known (revoked), so memory stays bounded."""
        for key_id in set(self._buckets) - keep:
            del self._buckets[key_id]
