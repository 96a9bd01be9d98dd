"""Trainer exceptions: one line each; the API maps JobNotFound to 404 and InvalidTransition to 409."""

from __future__ import annotations


class TrainerError(Exception):
    """Base class of every trainer error."""


class JobNotFound(TrainerError):
    """No job with that id."""


class InvalidTransition(TrainerError):
    """The job's state does not allow the requested action."""


class SpecError(TrainerError):
    """The job spec is invalid (the message names each bad field)."""


class DatasetError(TrainerError):
    """The dataset was rejected; ``report`` names each bad line and why."""

    def __init__(self, report: list[str], path: str = "") -> None:
        self.report = report
        self.path = path
        head = f"{path}: " if path else ""
        super().__init__(f"{head}{len(report)} problem(s): " + "; ".join(report[:5]) + (" ..." if len(report) > 5 else ""))
