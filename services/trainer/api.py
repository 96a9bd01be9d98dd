"""The trainer's public face: what the gateway, the stack and other services may use (docs/contracts.md).

Reads (the jobs projection), submitting a dataset as a job, the job control commands (they check the job's
state and publish ``job.control_requested``; the worker acts at its next step) and the trainer's exceptions.
Everything else in ``services.trainer`` is private to it (enforced by import-linter, ``make lint``).
"""

from __future__ import annotations

from services.trainer.control import cancel, pause, queue_order, reprioritise, resume, skip, stop
from services.trainer.datasets import load_and_validate
from services.trainer.exceptions import DatasetError, InvalidTransition, JobNotFound, SpecError, TrainerError
from services.trainer.preview import job_preview, preview_file
from services.trainer.projection import JobsProjection, get_job, job_metrics, list_jobs
from services.trainer.spec import parse_spec
from services.trainer.submit import submit_job, submitted_dataset

__all__ = [
    "DatasetError", "InvalidTransition", "JobNotFound", "JobsProjection", "SpecError", "TrainerError", "cancel",
    "get_job", "job_metrics", "job_preview", "list_jobs", "load_and_validate", "parse_spec", "pause",
    "preview_file", "queue_order", "reprioritise", "resume", "skip", "stop", "submit_job", "submitted_dataset",
]
