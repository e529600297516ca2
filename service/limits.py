"""Per-tenant limits: requests per second, and runs working at once.

- RequestRate: a token bucket per tenant, in this process. Every call the service takes (over gRPC,
  or from the HTTP edge) spends one token once its tenant is known; a tenant with none left is
  refused with RateLimitExceeded and told when the next token comes. With several replicas each
  keeps its own buckets: the rate a tenant gets is per replica.
- RunLimit: the runs a tenant has working at once (queued, in progress or cancelling; runs waiting
  for tool outputs are not counted), read from the store's table of active runs, so the count is
  the same from every replica. It is checked before a run writes anything: a refused run leaves no
  trace. Two starts racing for a tenant's last slot may both pass (the check and the claim are
  separate steps), so the limit may be overshot by the starts in flight at that moment.
"""

import math
import time
from dataclasses import dataclass

from service.engine.ownership import Token
from service.errors import RateLimitExceeded
from service.store import Store


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RequestRate:
    def __init__(self, per_second: float, burst: int = 0, clock=time.monotonic):
        self.per_second = per_second
        self.burst = max(1, burst or math.ceil(per_second))
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def spend(self, tenant: str) -> None:
        """Counts one request of tenant; raises RateLimitExceeded when it has none left."""
        if self.per_second <= 0:
            return
        now = self._clock()
        bucket = self._buckets.get(tenant)
        if bucket is None:
            bucket = self._buckets[tenant] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.per_second)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / self.per_second
            raise RateLimitExceeded(
                f"Rate limit reached for requests: limit {self.per_second:g} per second (burst {self.burst}). "
                f"Please try again in {math.ceil(wait)}s.",
                retry_after=wait,
            )
        bucket.tokens -= 1.0


class RunLimit:
    RETRY_SECONDS = 1.0  # when a run will end is unknown: a short wait before asking again

    def __init__(self, store: Store, max_active: int):
        self._store = store
        self.max_active = max_active

    async def working(self, tenant: str) -> int:
        """The tenant's active runs that are not waiting for tool outputs, on every replica."""
        return sum(
            1
            for run_tenant, _, _, owner in await self._store.active_runs()
            if run_tenant == tenant and not Token.parse(owner).waiting
        )

    async def admit(self, tenant: str) -> None:
        """Raises RateLimitExceeded when tenant has its limit of working runs already."""
        if self.max_active <= 0:
            return
        if await self.working(tenant) >= self.max_active:
            raise RateLimitExceeded(
                f"Rate limit reached for runs: at most {self.max_active} active run(s) at once. "
                "Please try again once a run has ended.",
                retry_after=self.RETRY_SECONDS,
            )
