"""The one exception tree of imagerepainter.

Every error the library raises on purpose derives from :class:`RepainterError`, so an
application can catch them all in one place. Developer mistakes (bad configuration, a
bad reference image, an unknown backend) are kept apart from runtime failures of a
backend (a model server that keeps failing, a pipeline that crashes)::

    RepainterError
    ├── ConfigurationError          also ValueError: a bad argument or config value
    │   ├── UnknownBackendError     also KeyError: a spec no backend answers to ("did you mean ...")
    │   └── CapabilityError         a backend cannot do what the loop needs (e.g. two images at once)
    ├── InvalidImageError           also ValueError: the reference cannot be used as an image
    │   └── ImageTooLargeError      the image is absurdly large (decompression-bomb guard)
    ├── ImageNotFoundError          also LookupError: an image ref is not in the image store at hand
    ├── MissingDependencyError      also ImportError: an optional extra is not installed
    ├── ThreadInUseError            a thread id is running now, or already holds a run
    ├── IncompleteRunError          the graph stopped before the run finished; resume the thread
    └── BackendError                a backend failed at run time; ``__cause__`` keeps a local error (not an HTTP one)
        ├── MLLMError
        │   └── StructuredOutputError   the model never produced output matching the schema
        └── GenerationError         the text-to-image backend failed

Stopping the loop is never an error: ``RepaintResult.stop_reason`` says why it stopped.
Messages name the argument, show the value and say what to do. They never contain
secrets such as API keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .results import RepaintResult

__all__ = [
    "BackendError",
    "CapabilityError",
    "ConfigurationError",
    "GenerationError",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "IncompleteRunError",
    "InvalidImageError",
    "MLLMError",
    "MissingDependencyError",
    "RepainterError",
    "StructuredOutputError",
    "ThreadInUseError",
    "UnknownBackendError",
]


class RepainterError(Exception):
    """Base class of every error raised by imagerepainter."""


class ConfigurationError(RepainterError, ValueError):
    """A configuration value or argument is invalid; the message says which and how to fix it."""


class UnknownBackendError(ConfigurationError, KeyError):
    """A backend spec string does not name any registered backend."""

    def __init__(self, message: str, *, spec: str, suggestions: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.spec = spec
        """The spec string that was not understood."""
        self.suggestions = suggestions
        """Registered names close to ``spec``."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class CapabilityError(ConfigurationError):
    """A backend lacks a capability the loop needs, such as taking two images in one request."""


class InvalidImageError(RepainterError, ValueError):
    """The reference is unreadable, empty, truncated or not an image."""


class ImageTooLargeError(InvalidImageError):
    """The image has more pixels than the configured limit (a decompression-bomb guard)."""


class ImageNotFoundError(RepainterError, LookupError):
    """An image ref points to no image in the store at hand (e.g. an in-memory store of another process)."""


class ThreadInUseError(RepainterError):
    """A checkpoint thread is running now, or already holds a run; use another ``thread_id`` or resume it."""

    def __init__(self, message: str, *, thread_id: str) -> None:
        super().__init__(message)
        self.thread_id = thread_id
        """The thread that is in use."""


class MissingDependencyError(RepainterError, ImportError):
    """An optional dependency is missing; the message names the ``pip install`` that fixes it."""


class IncompleteRunError(RepainterError):
    """The graph stopped without finishing the run, and without a backend error.

    It happens when a step was cancelled (e.g. an abandoned ``astream``) or the graph was
    interrupted. Nothing is lost: ``Repainter.resume(error.thread_id)`` continues the run.
    """

    def __init__(self, message: str, *, thread_id: str) -> None:
        super().__init__(message)
        self.thread_id = thread_id
        """The checkpoint thread to resume."""


class BackendError(RepainterError):
    """A backend failed while the loop was running.

    Work already paid for (finished rounds, generated images) stays in the checkpoint and
    the image store; resume the run with the same ``thread_id`` once the cause is fixed.
    """

    thread_id: str | None = None
    """The checkpoint thread of the failed run: ``Repainter.resume(thread_id)`` continues it."""
    partial_result: RepaintResult | None = None
    """What the run had finished (rounds, and images of a round not closed) when it failed."""

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(message)
        self.backend = backend
        """The name of the backend that failed, when known."""


class MLLMError(BackendError):
    """The multimodal language model failed (after the retries the policy allows)."""


class StructuredOutputError(MLLMError):
    """The model's answers never validated against the requested schema."""

    def __init__(
        self, message: str, *, backend: str | None = None, schema: str, attempts: int, raw_output: str | None
    ) -> None:
        super().__init__(message, backend=backend)
        self.schema = schema
        """Name of the pydantic schema that was requested."""
        self.attempts = attempts
        """How many requests were made before giving up."""
        self.raw_output = raw_output
        """The last raw text the model returned, for debugging."""


class GenerationError(BackendError):
    """The text-to-image backend failed."""
