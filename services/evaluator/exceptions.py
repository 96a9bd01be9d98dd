"""Evaluator exceptions: one line each."""

from __future__ import annotations


class EvaluatorError(Exception):
    """Base of the evaluator's errors."""


class SnapshotInputError(EvaluatorError):
    """A snapshot cannot be taken: its tracked examples, version or base model are missing or invalid."""


class UnknownJobError(EvaluatorError):
    """No snapshots are known for this job."""


class InvalidQueryError(EvaluatorError):
    """A read-model query has a bad argument (unknown sort, state, region or format)."""


class RemoteError(EvaluatorError):
    """The remote inference server could not be reached or refused a request (transient: the snapshot is retried)."""
