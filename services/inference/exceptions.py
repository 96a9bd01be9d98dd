"""Every error the inference service raises, one line each; ``errors.py`` maps them onto HTTP statuses."""

from __future__ import annotations


class InferenceError(Exception):
    """Base class of the inference service's errors."""


class NotReadyError(InferenceError):
    """The base model is still loading (or failed to load)."""


class BadRequestError(InferenceError):
    """The request is malformed or asks for something unsupported."""


class ModelNotFoundError(InferenceError):
    """No base model or loaded adapter of that name."""


class AdapterPathError(InferenceError):
    """The adapter path is outside the adapters directory or lacks the expected files."""


class PickledWeightsError(InferenceError):
    """The adapter ships pickled weights (.bin/.pt) instead of adapter_model.safetensors."""


class IncompatibleAdapterError(InferenceError):
    """The adapter was made for another base model (name and tensor shapes do not match)."""


class AdapterLoadError(InferenceError):
    """peft could not load the adapter; the previous one keeps serving."""


class OutOfMemoryError(InferenceError):
    """The device ran out of memory loading an adapter or generating."""


class UploadNotFoundError(InferenceError):
    """No upload with that id."""


class UploadConflictError(InferenceError):
    """The upload is not in a state that allows this (wrong offset, incomplete, already committed)."""


class UploadTooLargeError(InferenceError):
    """More bytes than the file's declared size."""


class ChecksumMismatchError(InferenceError):
    """A file's size or sha256 differs from what the upload declared."""


class FetchError(InferenceError):
    """The server could not download a file from the given URL."""
