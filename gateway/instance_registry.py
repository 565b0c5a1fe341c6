"""The registry of service instances: TTL, round robin among the healthy ones.

Pure state with the clock passed in; the app runs the pruning loop and the breakers'
outcomes come from the proxy.

When every instance of a kind has fallen silent at once, the registry fails static: it keeps
them and routes to them, and their breakers decide. Heartbeats that all stop together say
more often that the gateway is too busy to take them in time than that every instance died,
and forgetting them all would turn an overload into an outage. A dead instance still fails
fast: its calls fail and open its breaker.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from ethgw_wire.http_api import Service
from ethgw_wire.registration import InstanceRegistration
from gateway.breaker import BreakerState, CircuitBreaker


@dataclass
class Instance:
    instance_id: str
    kind: Service
    url: str
    registered_at: float
    last_seen: float
    breaker: CircuitBreaker

    def expired(self, now: float, ttl_s: float) -> bool:
        return now - self.last_seen > ttl_s

    def view(self, now: float, ttl_s: float) -> dict[str, Any]:
        """What an operator sees of the instance (GET /admin/instances)."""
        state = self.breaker.state(now)
        return {
            "instance_id": self.instance_id,
            "kind": self.kind,
            "url": self.url,
            "registered_s_ago": round(now - self.registered_at, 3),
            "last_seen_s_ago": round(now - self.last_seen, 3),
            "expires_in_s": round(max(0.0, self.last_seen + ttl_s - now), 3),
            "breaker": str(state),
            "consecutive_failures": self.breaker.failures,
            "healthy": state is not BreakerState.OPEN and not self.expired(now, ttl_s),
        }


class Registry:
    def __init__(self, ttl_s: float, new_breaker: Callable[[], CircuitBreaker]) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.ttl_s = ttl_s
        self._new_breaker = new_breaker
        self._instances: dict[str, Instance] = {}
        self._turn: dict[Service, int] = {"read": 0, "write": 0}

    def register(self, registration: InstanceRegistration, now: float) -> Instance:
        """Add or replace an instance. A registration comes from a process that has just
        started (or from one the registry forgot), so the instance starts with a closed
        breaker: refusing it for open_s after a restart would only waste capacity."""
        known = self._instances.get(registration.instance_id)
        registered_at = (
            now if known is None or known.url != registration.url else known.registered_at
        )
        instance = Instance(
            instance_id=registration.instance_id,
            kind=registration.kind,
            url=registration.url,
            registered_at=registered_at,
            last_seen=now,
            breaker=self._new_breaker(),
        )
        self._instances[instance.instance_id] = instance
        return instance

    def heartbeat(self, instance_id: str, now: float) -> Instance | None:
        """Refresh an instance's TTL; None when it is unknown (it must register again)."""
        instance = self._instances.get(instance_id)
        if instance is None or instance.expired(now, self.ttl_s):
            # An expired instance is forgotten even before the pruning loop runs, so its
            # next beat re-registers it with whatever URL it has now.
            self._instances.pop(instance_id, None)
            return None
        instance.last_seen = now
        return instance

    def deregister(self, instance_id: str) -> Instance | None:
        return self._instances.pop(instance_id, None)

    def expire(self, now: float) -> list[Instance]:
        """Drop the instances silent for longer than the TTL, except those of a kind with no
        live instance left (fail static); returns the dropped ones."""
        gone = [
            i
            for i in self._instances.values()
            if i.expired(now, self.ttl_s) and self.live(i.kind, now)
        ]
        for instance in gone:
            del self._instances[instance.instance_id]
        return gone

    def live(self, kind: Service, now: float) -> list[Instance]:
        """Instances of the kind whose heartbeats are within the TTL."""
        return [i for i in self.instances(kind) if not i.expired(now, self.ttl_s)]

    def failing_static(self, kind: Service, now: float) -> bool:
        """Every instance of the kind is silent and the registry routes to them anyway."""
        return bool(self.instances(kind)) and not self.live(kind, now)

    def _routable(self, kind: Service, now: float) -> list[Instance]:
        """The live instances of the kind; if none is live, every one still held."""
        return self.live(kind, now) or self.instances(kind)

    def get(self, instance_id: str) -> Instance | None:
        return self._instances.get(instance_id)

    def instances(self, kind: Service | None = None) -> list[Instance]:
        """Every instance (of a kind), in id order."""
        found = [i for i in self._instances.values() if kind is None or i.kind == kind]
        return sorted(found, key=lambda i: i.instance_id)

    def healthy(self, kind: Service, now: float) -> list[Instance]:
        """Live instances of a kind whose breaker is not open (readiness counts these: an
        instance routed to only while failing static is not healthy)."""
        return [i for i in self.live(kind, now) if i.breaker.available(now)]

    def choose(self, kind: Service, now: float, exclude: Collection[str] = ()) -> Instance | None:
        """The next instance of the kind in round-robin order that is routable, not excluded
        and whose breaker lets a call through (claiming the half-open trial if so)."""
        live = [i for i in self._routable(kind, now) if i.instance_id not in exclude]
        if not live:
            return None
        start = self._turn[kind]
        self._turn[kind] = start + 1
        for step in range(len(live)):
            instance = live[(start + step) % len(live)]
            if instance.breaker.allow(now):
                return instance
        return None

    def retry_after(self, kind: Service, now: float) -> float | None:
        """Seconds until some instance of the kind may take a call again (None: none
        registered, so the answer depends on a service starting, not on time)."""
        waits = [i.breaker.seconds_until_trial(now) for i in self._routable(kind, now)]
        return min(waits) if waits else None
