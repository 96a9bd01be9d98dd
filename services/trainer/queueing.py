"""RQ adapter: one queue per priority (high, default, low), served in that order by the trainer worker.

Each attempt of a job is its own RQ job (the first attempt's RQ id is the job id, later ones
``<job_id>-<n>``), so a requeue never collides with the RQ bookkeeping of the attempt that just ended.
"""

from __future__ import annotations

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

from services.trainer import jobstore
from services.trainer.states import Priority

QUEUES: tuple[str, ...] = tuple(p.value for p in Priority)  # high, default, low
JOB_FUNC = "services.trainer.recipe.run_job"


def queue(r: redis.Redis, priority: str | Priority) -> Queue:
    return Queue(Priority(priority).value, connection=r)


def enqueue(r: redis.Redis, job_id: str, priority: str | Priority, *, at_front: bool = False,
            first: bool = False) -> str:
    """Put an attempt of ``job_id`` on its priority queue; returns the RQ id and records it."""
    rq_id = job_id if first else f"{job_id}-{r.incr(jobstore.record_key(job_id) + ':rq')}"
    queue(r, priority).enqueue(JOB_FUNC, job_id, job_id=rq_id, at_front=at_front, job_timeout=-1,
                               result_ttl=86_400, failure_ttl=7 * 86_400, description=f"train {job_id}")
    jobstore.update(r, job_id, rq_id=rq_id, priority=Priority(priority).value)
    return rq_id


def dequeue(r: redis.Redis, job_id: str) -> bool:
    """Take a job's waiting attempt off its queue (True if one was waiting)."""
    rec = jobstore.load(r, job_id)
    rq_id = rec.get("rq_id")
    if not rq_id:
        return False
    removed = 0
    for name in QUEUES:
        removed += Queue(name, connection=r).connection.lrem(Queue(name, connection=r).key, 0, rq_id)
    try:
        Job.fetch(rq_id, connection=r).delete(remove_from_queue=False)
    except NoSuchJobError:
        pass
    return removed > 0


def order(r: redis.Redis) -> list[tuple[str, str]]:
    """(priority, job_id) of every waiting attempt, in the order the worker will take them."""
    out = []
    for name in QUEUES:
        for rq_id in Queue(name, connection=r).get_job_ids():
            job = Job.fetch(rq_id, connection=r) if Job.exists(rq_id, connection=r) else None
            if job is not None and job.args:
                out.append((name, str(job.args[0])))
    return out
