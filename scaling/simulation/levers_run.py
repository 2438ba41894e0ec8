"""The warm pool and predictive scaling inside one simulated run.

``PoolLedger`` keeps the warm pool beside the group: what a scale-out takes from it,
what scale-in returns to it, its refills, and its instance-seconds by state.
``Predictor`` keeps the run's own published backlog, refreshes the forecast from it
and answers, each period, the capacity predictive scaling holds the group at. Both
apply the shared rules of ``scaling.simulation.warm_pool`` and
``scaling.simulation.forecast``; what each choice follows is in docs/simulator.md,
"Warm pools and predictive scaling in the model".
"""

from __future__ import annotations

from dataclasses import dataclass

from scaling.simulation.forecast import (
    FORECAST_HORIZON_HOURS,
    FORECAST_REFRESH_SECONDS,
    HOUR_SECONDS,
    MIN_HISTORY_HOURS,
    ForecastHour,
    forecast_capacity,
    forecast_day,
    hourly_load,
)
from scaling.simulation.policy import SimPolicy
from scaling.simulation.warm_pool import pool_draw, pool_target, scale_in_returns


def span_measured(start: float, end: float, measure_from: float) -> float:
    """The part of [start, end] inside the measured window."""
    return max(0.0, end - max(start, measure_from))


@dataclass
class _Pooled:
    entered_at: float  # launched into the pool, or returned to it
    ready_at: float  # initialised (Warmed:Stopped/Running/Hibernated): can be drawn


class PoolLedger:
    """The warm pool of one run; every method is a no-op without one."""

    def __init__(self, *, policy: SimPolicy, desired: int, measure_from: float) -> None:
        self.spec = policy.warm_pool
        self.boot = float(policy.boot_seconds)
        self.max_size = policy.rules.max_size
        self.measure_from = measure_from
        self.stopped_seconds = 0.0
        self.running_seconds = 0.0
        self.entries: list[_Pooled] = []
        if self.spec is not None:
            # At the start the pool is full and already initialised.
            size = pool_target(desired, max_size=self.max_size, spec=self.spec)
            self.entries = [_Pooled(entered_at=0.0, ready_at=0.0) for _ in range(size)]

    def draw(self, wanted: int, *, now: float) -> list[float]:
        """Boot times of ``wanted`` new instances: warmed ones first, then cold launches."""
        if self.spec is None:
            return [self.boot] * wanted
        ready = [e for e in self.entries if e.ready_at <= now]
        taken, cold = pool_draw(wanted, pool_ready=len(ready))
        for entry in ready[:taken]:  # the longest-held first
            self._leave(entry, now=now)
        return [float(self.spec.warm_boot_seconds)] * taken + [self.boot] * cold

    def scale_in(self, *, desired: int, now: float) -> bool:
        """An instance leaves the group by scale-in: True if it went back to the pool."""
        spec = self.spec
        if spec is None or not scale_in_returns(
            pool_size=len(self.entries), desired=desired, max_size=self.max_size, spec=spec
        ):
            return False
        self.entries.append(_Pooled(entered_at=now, ready_at=now))
        return True

    def refill(self, *, desired: int, now: float) -> None:
        """Launch into the pool (each joins after a cold boot) or trim it, to its target."""
        if self.spec is None:
            return
        target = pool_target(desired, max_size=self.max_size, spec=self.spec)
        while len(self.entries) < target:
            self.entries.append(_Pooled(entered_at=now, ready_at=now + self.boot))
        if len(self.entries) > target:
            # Assumption: the pool sheds the instances still initialising first, newest first.
            order = sorted(self.entries, key=lambda e: (e.ready_at <= now, -e.entered_at))
            for entry in order[: len(self.entries) - target]:
                self._leave(entry, now=now)

    def close(self, *, end: float) -> tuple[float, float]:
        """(stopped, running) pool instance-seconds of the measured window, up to ``end``."""
        for entry in list(self.entries):
            self._leave(entry, now=end)
        return self.stopped_seconds, self.running_seconds

    def _leave(self, entry: _Pooled, *, now: float) -> None:
        self.entries.remove(entry)
        # While it initialises the instance runs (and is paid as one); then it waits in
        # the pool's state: Running pays the instance, Stopped/Hibernated only volumes.
        initialised = min(entry.ready_at, now)
        self.running_seconds += max(0.0, initialised - max(entry.entered_at, self.measure_from))
        waiting = span_measured(max(entry.ready_at, entry.entered_at), now, self.measure_from)
        assert self.spec is not None
        if self.spec.pays_instance:
            self.running_seconds += waiting
        else:
            self.stopped_seconds += waiting


class Predictor:
    """Predictive scaling in one run: 0 every period without it (no floor)."""

    def __init__(self, *, policy: SimPolicy, period: int) -> None:
        self.spec = policy.predictive
        self.rules = policy.rules
        self.period = period
        self.samples: list[tuple[float, float]] = []  # since the last refresh
        self.refreshed_at = 0.0
        self.loads: list[float] = []  # one per complete hour since the start
        self.schedule: dict[int, ForecastHour] = {}  # hour index -> its forecast
        self.hour = -1  # the hour whose forecast capacity holds now
        self.capacity = 0
        self.used: list[ForecastHour] = []

    def tick(self, *, now: float, backlog: int) -> int:
        """The period at ``now``: record the published backlog; answer the capacity that
        predictive scaling holds (0: none, or forecast-only)."""
        spec = self.spec
        if spec is None:
            return 0
        if now > 0 and now % FORECAST_REFRESH_SECONDS == 0:
            self._refresh(now=now)
        # Each hour's capacity is scheduled SchedulingBufferTime before the hour starts.
        hour = int((now + spec.scheduling_buffer_seconds) // HOUR_SECONDS)
        if hour != self.hour:
            self.hour = hour
            chosen = self.schedule.pop(hour, None)
            self.capacity = 0
            if chosen is not None:
                self.used.append(chosen)
                self.capacity = chosen.capacity if spec.scales else 0
        self.samples.append((now, float(backlog)))
        return self.capacity

    def _refresh(self, *, now: float) -> None:
        spec = self.spec
        assert spec is not None
        self.loads += hourly_load(self.samples, start_seconds=self.refreshed_at)
        self.samples = []
        self.refreshed_at = now
        if len(self.loads) < MIN_HISTORY_HOURS:
            return  # AWS makes no forecast from less than a day of history
        first = int(now // HOUR_SECONDS)
        for ahead, load in enumerate(forecast_day(self.loads, hours=FORECAST_HORIZON_HOURS)):
            index = first + ahead
            if index <= self.hour:
                continue  # already scheduled (its action time has passed)
            self.schedule[index] = ForecastHour(
                seconds=float(index * HOUR_SECONDS),
                load=load,
                capacity=forecast_capacity(
                    load,
                    target=self.rules.target,
                    min_size=self.rules.min_size,
                    max_size=self.rules.max_size,
                    spec=spec,
                ),
            )
