"""Storage budget benchmark: ``python -m bench.bench_storage``.

* ``storage_plan_time``: seconds for ``storage plan`` (read the versions view from Redis, plan every job's
  thinning with its reasons) over 10,000 versions (100 jobs x 100 checkpoints, 3 aliases, every version
  replicated); baseline = the bare read of the same view (HVALS + json decode), the least any plan must do.

Starts its own redis-server and SeaweedFS in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import record
from bench.demojob import servers
from services.registry.budget import storage_plan
from services.registry.context import Registry
from services.registry.projection import NAME, VersionsProjection
from shared.bus import publish
from shared.events import AliasMoved, Event, VersionReplicated, VersionStored
from shared.projection import LIVE, ProjectionRunner, View
from shared.settings import RegistrySettings

CMD = "python -m bench.bench_storage"


def populate(reg: Registry, jobs: int, per_job: int) -> None:
    for j in range(jobs):
        for s in range(1, per_job + 1):
            vid = f"ad-{j:03d}-{s:04d}"
            stored = VersionStored(version_id=vid, kind="adapter", manifest_key=f"manifests/{vid}.json", files=[],
                                   step=s * 10, size=2_400_000, created_at=f"2026-12-01T{j % 24:02d}:{s // 60:02d}:"
                                   f"{s % 60:02d}", lineage={"job_id": f"job-{j}", "metrics": {"loss": 3 - s / 50}})
            publish(reg.r, Event.create("version.stored", stored, job_id=f"job-{j}"))
            publish(reg.r, Event.create("version.replicated", VersionReplicated(version_id=vid, replica="r"),
                                        job_id=f"job-{j}"))
    for alias in ("latest", "best", "production:box3090"):
        publish(reg.r, Event.create("alias.moved", AliasMoved(alias=alias, version_id="ad-000-0050")))
    ProjectionRunner(reg.r, VersionsProjection()).catch_up()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--per-job", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, servers(Path(tmp)) as common:
        reg = Registry.open(RegistrySettings(**common, bucket_budget_gb=1.0), ensure=True)
        t0 = time.perf_counter()
        populate(reg, args.jobs, args.per_job)
        load_s = time.perf_counter() - t0
        key = View(reg.r, NAME, LIVE).key("versions")
        runs, bare = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            [json.loads(raw) for raw in reg.r.hvals(key)]
            bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            plan = storage_plan(reg, running_jobs={"job-1"})
            runs.append(time.perf_counter() - t0)
    n = len(plan.decisions)
    value, base = statistics.median(runs), statistics.median(bare)
    record("storage_plan_time", value=value, unit="s", baseline=base, ratio=value / base,
           target="<= 2 s over 10,000 versions", runs=runs, command=CMD, met=value <= 2.0 and n == 10_000,
           baseline_name="bare HVALS + json decode of the same versions view",
           notes=f"{n} versions ({args.jobs} jobs x {args.per_job}), {len(plan.removals)} planned removals under a "
                 f"1 GB budget; view loaded through the projection in {load_s:.0f}s; real redis-server")


if __name__ == "__main__":
    main()
