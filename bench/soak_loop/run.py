"""One loop soak: start the loop, upload the plan's bursts and play its faults for the
window, drain, stop everything, then read the database, the logs and moto into the report.

The orchestrator reads the database through Django's default connection, which must
be the soak's database (the CLI sets it up; the test's is its own test database).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import BASE_DIR
from bench.soak_loop.inject import FaultRecord, Injector
from bench.soak_loop.ledger import busy_when_gone, ledgers_build, loss_explain
from bench.soak_loop.plan import Plan, SoakLoopConfig, plan_draw
from bench.soak_loop.report import SoakLoopReport
from bench.soak_loop.stack import ASG, LoopStack, loop_stack
from devstack.localaws import local_client
from devstack.loop import LoopWatch

CORE = ("api", "worker", "beat", "control", "fleet")
SAMPLE_SECONDS = 1.0


@dataclass
class Drive:
    watch: LoopWatch
    records: list[FaultRecord]
    start: float
    window_end: float
    end: float
    settled_at: float | None
    bursts: int


def soak_loop_run(
    config: SoakLoopConfig,
    *,
    tmp: Path,
    database_url: str,
    redis_url: str,
    create_database: str | None = None,
) -> SoakLoopReport:
    plan = plan_draw(config)
    report = SoakLoopReport(
        minutes=config.minutes,
        seed=config.seed,
        faults_enabled=sorted(config.faults),
        settings=(
            f"{config.interval} s slots, lease {config.lease} s, jobs {config.hold} s, "
            f"max attempts {config.max_attempts}, target {config.target:g}/instance"
        ),
    )
    (tmp / "plan.json").write_text(json.dumps(asdict(plan), indent=1))
    with loop_stack(
        config,
        tmp=tmp,
        database_url=database_url,
        redis_url=redis_url,
        create_database=create_database,
    ) as stack:
        drive = _drive(stack, plan, config, report)
        terminated = instances_terminated(stack, list(drive.watch.launched))
        stack.stop()
        _analyse(report, stack, drive, config, terminated)
    (tmp / "report.json").write_text(json.dumps(asdict(report), indent=1, default=str))
    return report


def _drive(stack: LoopStack, plan: Plan, config: SoakLoopConfig, report: SoakLoopReport) -> Drive:
    start = time.time()
    watch = LoopWatch(
        autoscaling=local_client("autoscaling", stack.endpoint, stack.region),
        ec2=local_client("ec2", stack.endpoint, stack.region),
        asg_name=ASG,
        boot_seconds=config.boot,
        video_ids=[],
        zero=start,
        timeline=stack.timeline,
    )
    injector = Injector(stack, plan.faults, start=start, seed=config.seed)
    bursts = list(plan.bursts)
    uploading: list[tuple[str, subprocess.Popen[str]]] = []
    window_end = start + config.minutes * 60
    drain_end = window_end + config.drain_seconds
    settled_at: float | None = None
    try:
        while time.time() < drain_end:
            now = time.time()
            in_window = now < window_end
            while in_window and bursts and now >= start + bursts[0][0]:
                _, count = bursts.pop(0)
                prefix = f"soak-b{len(plan.bursts) - len(bursts)}"
                uploading.append((prefix, _upload(stack, prefix, count)))
            uploading = _uploads_collect(uploading, watch)
            if in_window:
                injector.step(now)
            else:
                injector.finish()
            try:
                watch.sample(now)
            except Exception as exc:  # one missed sample is not a finding
                print(f"soak-loop: sample skipped ({type(exc).__name__}: {exc})", flush=True)
            report.exited = [name for name in CORE if not stack.alive(name)]
            if report.exited:
                print(f"soak-loop: {', '.join(report.exited)} exited: stopping", flush=True)
                break
            if not in_window and not uploading and watch.samples and watch.settled():
                settled_at = now
                break
            time.sleep(max(0.0, SAMPLE_SECONDS - (time.time() - now)))
    finally:
        injector.finish()
        for _, process in uploading:
            process.kill()
    return Drive(
        watch=watch,
        records=injector.records,
        start=start,
        window_end=window_end,
        end=time.time(),
        settled_at=settled_at,
        bursts=len(plan.bursts) - len(bursts),
    )


def _upload(stack: LoopStack, prefix: str, count: int) -> subprocess.Popen[str]:
    """``manage.py video_upload_burst`` (one transaction; the job messages after commit)."""
    args = ["manage.py", "video_upload_burst", "--count", str(count), "--title-prefix", prefix]
    return subprocess.Popen(
        [sys.executable, *args, "--json"],
        cwd=BASE_DIR,
        env=stack.direct_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _uploads_collect(
    uploading: list[tuple[str, subprocess.Popen[str]]], watch: LoopWatch
) -> list[tuple[str, subprocess.Popen[str]]]:
    from video.models import Video

    left = []
    for prefix, process in uploading:
        if process.poll() is None:
            left.append((prefix, process))
            continue
        ids = Video.objects.filter(title__startswith=f"{prefix} ").values_list("pk", flat=True)
        watch.video_ids.extend(sorted(ids))
        output = (process.stdout.read() if process.stdout else "").strip()
        print(f"soak-loop: burst {prefix}: {len(ids)} videos ({output[-200:]})", flush=True)
    return left


def instances_terminated(stack: LoopStack, instance_ids: list[str]) -> dict[str, float]:
    """instance -> when EC2 (moto) terminated it, to the second (its StateTransitionReason)."""
    ec2 = local_client("ec2", stack.endpoint, stack.region)
    found: dict[str, float] = {}
    for chunk in range(0, len(instance_ids), 100):
        ids = instance_ids[chunk : chunk + 100]
        for reservation in ec2.describe_instances(InstanceIds=ids)["Reservations"]:
            for instance in reservation["Instances"]:
                reason = instance.get("StateTransitionReason") or ""
                if instance["State"]["Name"] in ("shutting-down", "terminated") and "(" in reason:
                    text = reason.split("(", 1)[1].split(" UTC", 1)[0]
                    at = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                    found[instance["InstanceId"]] = at.timestamp()
    return found


def _analyse(
    report: SoakLoopReport,
    stack: LoopStack,
    drive: Drive,
    config: SoakLoopConfig,
    terminated: dict[str, float],
) -> None:
    from video.models import Video, VideoRecovery

    videos = list(Video.objects.values_list("pk", "title", "status", "attempts", "last_error"))
    recoveries = [
        (v, at.timestamp(), k, i, s)
        for v, at, k, i, s in VideoRecovery.objects.values_list(
            "video_id", "recovered_at", "attempts", "instance_id", "status"
        )
    ]
    api_log, fleet_log = stack.log("api"), stack.log("fleet")
    ledgers = ledgers_build(
        videos=videos, recoveries=recoveries, api_log=api_log, fleet_log=fleet_log
    )
    causes: Counter[str] = Counter()
    for ledger in ledgers.values():
        for claim in ledger.losses:
            claim.explained_by = loss_explain(
                claim, drive.records, config=config, instances_gone=terminated, start=drive.start
            )
            causes[claim.explained_by.split(" ", 1)[0] or "unexplained"] += 1
    report.videos, report.bursts = len(ledgers), drive.bursts
    report.losses_by_cause = dict(causes)
    for pk, ledger in sorted(ledgers.items()):
        report.ready += ledger.status == "READY"
        if ledger.status == "FAILED":
            report.failed += 1
            reason = ledger.last_error or "(no reason)"
            report.failed_reasons[reason] = report.failed_reasons.get(reason, 0) + 1
            real = [c for c in ledger.losses if c.explained_by]
            if len(real) < config.max_attempts:
                report.failed_without_real_losses.append(pk)
        if ledger.status in ("UPLOADED", "PROCESSING"):
            report.stuck.append(pk)
        if ledger.finished_twice:
            report.finished_twice.append(pk)
        report.extra_attempts += ledger.extra_attempts
        if ledger.unexplained_attempts:
            lost = "; ".join(
                f"{c.ended} {_held_for(c)} after its claim on {c.instance_id}"
                for c in ledger.losses
                if not c.explained_by
            )
            report.unexplained_attempts.append(
                f"video {pk}: {ledger.unexplained_attempts} of {ledger.extra_attempts} ({lost})"
            )
        if ledger.attempts != len(ledger.claims) - ledger.releases:
            report.ledger_gaps.append(pk)
    report.busy_scaled_in = sorted(
        set(drive.watch.busy_terminated) | busy_when_gone(ledgers, terminated)
    )
    last = drive.watch.samples[-1] if drive.watch.samples else None
    if last is not None:
        report.group_final = f"desired {last.desired}, running {last.running} (minimum 0)"
        report.group_at_minimum = last.desired == 0 and last.running == 0
    if drive.settled_at is not None:
        report.drained_after = drive.settled_at - drive.window_end
    report.faults = dict(Counter(r.kind for r in drive.records))
    report.worker_faults_on_videos = sum(1 for r in drive.records if r.video_id is not None)
    for name in CORE:
        report.tracebacks[name] = stack.log(name).count("Traceback")
    _publisher(report, stack, drive, config)
    _ledger_write(stack.tmp / "ledger.jsonl", ledgers)


def _publisher(
    report: SoakLoopReport, stack: LoopStack, drive: Drive, config: SoakLoopConfig
) -> None:
    """Datapoints from moto (SampleCount per slot), audit rows, the watcher's backlog."""
    from scaling.models import MetricPublication

    step = config.interval
    first = drive.start - drive.start % step + step
    slots = [first + i * step for i in range(int((drive.end - first) // step))]
    report.slots = len(slots)
    cloudwatch = local_client("cloudwatch", stack.endpoint, stack.region)
    points: dict[float, dict[str, Any]] = {}
    for chunk in range(0, len(slots), 1000):
        part = slots[chunk : chunk + 1000]
        response = cloudwatch.get_metric_statistics(
            Namespace="Academy/VideoProcessing",
            MetricName="BacklogCount",
            Dimensions=[
                {"Name": "WorkerType", "Value": "Video"},
                {"Name": "AutoScalingGroupName", "Value": ASG},
            ],
            StartTime=datetime.fromtimestamp(part[0], tz=UTC),
            EndTime=datetime.fromtimestamp(part[-1] + step, tz=UTC),
            Period=step,
            Statistics=["Minimum", "Maximum", "SampleCount"],
        )
        for p in response["Datapoints"]:
            points[p["Timestamp"].timestamp()] = p
    since = datetime.fromtimestamp(first, tz=UTC)
    audit = {
        row[0].timestamp(): row
        for row in MetricPublication.objects.filter(slot_start__gte=since).values_list(
            "slot_start", "status", "source"
        )
    }
    for slot in slots:
        row = audit.get(slot)
        if row is None:
            report.slots_no_record += 1
        elif row[1] == "published":
            report.published_db += row[2] == "db"
            report.published_sqs += row[2] == "sqs"
        else:
            report.slots_failed += 1
    backlog = [(drive.start + s.seconds, s.waiting + s.processing) for s in drive.watch.samples]
    for slot, point in sorted(points.items()):
        report.duplicates += int(point["SampleCount"]) - 1
        if point["Minimum"] != 0:
            continue
        around = [n for at, n in backlog if slot - 1 <= at <= slot + step]
        if len(around) >= 3 and min(around) > 0:
            label = datetime.fromtimestamp(slot, tz=UTC).strftime("%H:%M:%S")
            source = audit.get(slot, (None, None, ""))[2]
            target = report.sqs_zeros_under_backlog if source == "sqs" else report.made_up_zeros
            target.append(f"{label} (backlog {min(around)}-{max(around)}, source {source or '-'})")
    for record in drive.records:
        if record.kind == "redis-refuse":
            inside = [s for s in slots if record.start <= s < record.end]
            report.redis_slots += len(inside)
            report.redis_slots_unpublished += sum(1 for s in inside if s not in points)


def _held_for(claim: Any) -> str:
    return "-" if claim.ended_at is None else f"{claim.ended_at - claim.at:.0f} s"


def _ledger_write(path: Path, ledgers: dict[int, Any]) -> None:
    with path.open("w") as out:
        for _, ledger in sorted(ledgers.items()):
            out.write(json.dumps(asdict(ledger), default=str) + "\n")
