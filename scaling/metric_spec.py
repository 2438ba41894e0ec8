"""The published metric, in one place.

The publisher (``publisher.py``) and the policy builder (``policy.py``) both
build their requests from ``metric_spec_get()``; no other module spells the
namespace, metric names, dimensions, unit or period.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaling.conf import ScalingSettings, scaling_settings

OLDEST_AGE_METRIC_NAME = "OldestBacklogAgeSeconds"
RECOVERED_METRIC_NAME = "RecoveredVideos"
# The fleet reconciler's view of the group (scaling.fleet.reconcile), published
# only in a slot where it read the group.
BUSY_METRIC_NAME = "BusyInstances"
PROTECTED_METRIC_NAME = "ProtectedInstances"


@dataclass(frozen=True)
class MetricSpec:
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    unit: str
    period_seconds: int
    storage_resolution: int
    oldest_age_metric_name: str = OLDEST_AGE_METRIC_NAME
    oldest_age_unit: str = "Seconds"
    recovered_metric_name: str = RECOVERED_METRIC_NAME
    busy_metric_name: str = BUSY_METRIC_NAME
    protected_metric_name: str = PROTECTED_METRIC_NAME

    def dimensions_api(self) -> list[dict[str, str]]:
        """Dimensions in the Name/Value shape CloudWatch and Auto Scaling both take."""
        return [{"Name": name, "Value": value} for name, value in self.dimensions]

    @property
    def asg_name(self) -> str:
        return dict(self.dimensions)["AutoScalingGroupName"]


def metric_spec_get(
    *, conf: ScalingSettings | None = None, asg_name: str | None = None
) -> MetricSpec:
    conf = conf or scaling_settings()
    interval = conf.interval
    return MetricSpec(
        namespace=conf.namespace,
        metric_name=conf.metric_name,
        dimensions=(
            *(conf.dimensions or (("WorkerType", conf.worker_type),)),
            ("AutoScalingGroupName", asg_name or conf.asg_name),
        ),
        unit="Count",
        period_seconds=interval,
        # High resolution only when the policy reads periods under a minute.
        storage_resolution=1 if interval < 60 else 60,
    )
