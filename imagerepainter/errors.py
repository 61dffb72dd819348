"""The one exception tree of imagerepainter.

Every error the library raises on purpose derives from :class:`RepainterError`, so an
application can catch them all in one place. Developer mistakes (bad configuration, a
bad reference image, an unknown backend) are kept apart from runtime failures of a
backend (a model server that keeps failing, a pipeline that crashes)::

    RepainterError
    ├── ConfigurationError          also ValueError: a bad argument or config value
    │   ├── UnknownBackendError     also KeyError: a spec no backend answers to ("did you mean ...")
    │   ├── CapabilityError         a backend cannot do what the loop needs (e.g. two images at once)
    │   └── ReviewError             a review answer is invalid, or the run is not waiting for it
    ├── InvalidImageError           also ValueError: the reference cannot be used as an image
    │   └── ImageTooLargeError      the image is absurdly large (decompression-bomb guard)
    ├── ImageNotFoundError          also LookupError: an image ref is not in the image store at hand
    ├── MissingDependencyError      also ImportError: an optional extra is not installed
    │   └── MetricUnavailableError  a benchmark metric's package or pretrained weights cannot be loaded
    ├── ThreadInUseError            a thread id is running now, or already holds a run
    ├── IncompleteRunError          the graph stopped before the run finished; resume the thread
    ├── BatchError                  some runs of a batch failed; ``results`` keeps every finished one
    └── BackendError                a backend failed at run time; ``__cause__`` keeps a local error (not an HTTP one)
        ├── MLLMError
        │   └── StructuredOutputError   the model never produced output matching the schema
        └── GenerationError         the text-to-image backend failed

Stopping the loop is never an error: ``RepaintResult.stop_reason`` says why it stopped.
Messages name the argument, show the value and say what to do. They never contain
secrets such as API keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .results import RepaintResult

__all__ = [
    "BackendError",
    "BatchError",
    "CapabilityError",
    "ConfigurationError",
    "GenerationError",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "IncompleteRunError",
    "InvalidImageError",
    "MLLMError",
    "MetricUnavailableError",
    "MissingDependencyError",
    "ModelLoadError",
    "RepainterError",
    "ReviewError",
    "StructuredOutputError",
    "ThreadInUseError",
    "UnknownBackendError",
    "close_names",
    "did_you_mean",
]


class RepainterError(Exception):
    """Base class of every error raised by imagerepainter.

    Errors pickle with their attributes (for multiprocessing and caches), whatever their
    ``__init__`` takes::

        >>> import pickle
        >>> error = pickle.loads(pickle.dumps(ThreadInUseError("busy", thread_id="t1")))
        >>> str(error), error.thread_id
        ('busy', 't1')
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore, (type(self), self.args, dict(self.__dict__))


def _restore(cls: type[RepainterError], args: tuple[Any, ...], state: dict[str, Any]) -> RepainterError:
    """Rebuild a pickled error without calling its ``__init__`` (whose keywords are in ``state``)."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


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


class ReviewError(ConfigurationError):
    """A review answer is invalid, or the thread is not waiting for the answer given (see
    :mod:`imagerepainter.loop.review`).

    Nothing was called: answer again (``Repainter.resume(thread_id, review=...)``) with a valid value.
    """


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

    extras: tuple[str, ...] = ()
    """The extras of ``imagerepainter`` that install what is missing, when the message names them."""


class MetricUnavailableError(MissingDependencyError):
    """A metric cannot run here: a package or its pretrained weights cannot be loaded.

    ``missing`` names what is missing (packages, or a description of the weights).
    """

    def __init__(self, message: str, *, metric: str, missing: tuple[str, ...]) -> None:
        super().__init__(message)
        self.metric = metric
        """The metric that cannot run."""
        self.missing = missing
        """What is missing: package names, or the weights that could not be loaded."""


class IncompleteRunError(RepainterError):
    """The graph stopped without finishing the run, and without a backend error.

    It happens when a step was cancelled (e.g. an abandoned ``astream``) or the graph was
    interrupted. Nothing is lost: ``Repainter.resume(error.thread_id)`` continues the run.
    """

    def __init__(self, message: str, *, thread_id: str) -> None:
        super().__init__(message)
        self.thread_id = thread_id
        """The checkpoint thread to resume."""


class BatchError(RepainterError):
    """Some runs of ``Repainter.batch``/``abatch`` failed (without ``return_exceptions=True``).

    Raised once every run of the batch has ended, so nothing finished is lost: ``results`` holds
    each reference's outcome in the batch's order (a ``RepaintResult``, or the exception its run
    raised), ``failed`` the positions that failed. ``__cause__`` is the first failure.

        >>> error = BatchError("1 of 2 runs failed", results=["a result", ValueError("bad")], failed=[1])
        >>> error.failed, [r for r in error.results if not isinstance(r, Exception)]
        ([1], ['a result'])
    """

    def __init__(self, message: str, *, results: list[Any], failed: list[int]) -> None:
        super().__init__(message)
        self.results = results
        """Each reference's result or exception, in the order given."""
        self.failed = failed
        """The positions (0-based) of the references whose run failed."""


def close_names(name: str, known: Iterable[str], *, cutoff: float = 0.6) -> tuple[str, ...]:
    """The names of ``known`` closest to ``name``, for a "did you mean" (at most three, best first).

    Failing a close whole name, a name one of whose words (split at ``_``) is close: ``bach``
    suggests ``batch_size``. Every message that refuses a name (a backend, a spec option, a
    metric, a setting) asks this one function, so they all suggest alike.

    Example:
        >>> close_names("temprature", ["temperature", "top_p"]), close_names("bach", ["batch_size", "device"])
        (('temperature',), ('batch_size',))
        >>> close_names("sandbx", ["openai", "sandbox"]), close_names("xyz", ["openai"])
        (('sandbox',), ())
    """
    names = list(dict.fromkeys(known))
    close = difflib.get_close_matches(name, names, n=3, cutoff=cutoff)
    if close:
        return tuple(close)
    words = {word: full for full in names for word in full.split("_") if len(word) >= 3}
    return tuple(dict.fromkeys(words[w] for w in difflib.get_close_matches(name, list(words), n=3, cutoff=0.75)))


def did_you_mean(close: Iterable[str]) -> str:
    """``" Did you mean 'a' or 'b'?"`` for names found by :func:`close_names`, or ``""`` when there are none.

    Example:
        >>> "Unknown setting 'max_round'." + did_you_mean(close_names("max_round", ["max_rounds", "variants"]))
        "Unknown setting 'max_round'. Did you mean 'max_rounds'?"
    """
    close = tuple(close)
    return f" Did you mean {' or '.join(map(repr, close))}?" if close else ""


def call_site(node: str, round: int) -> str:
    """How an error message names a step of the loop: its node and round.

    ``round`` is the round the step belongs to: the round a ``propose``, ``generate`` or
    ``score`` builds, the closed round a ``critique`` or ``revise`` follows (``describe`` comes
    before any round).

    Example:
        >>> call_site("critique", 2), call_site("generate", 1), call_site("describe", 0)
        ('the critique after round 2', 'the generate step of round 1', 'the describe step')
    """
    if node in ("critique", "revise"):
        return f"the {node} after round {round}"
    if round <= 0:
        return f"the {node} step"
    return f"the {node} step of round {round}"


class BackendError(RepainterError):
    """A backend failed while the loop was running.

    Work already paid for (finished rounds, generated images) stays in the checkpoint and
    the image store; resume the run with the same ``thread_id`` once the cause is fixed.

    When the loop knows where the failure happened, ``node``, ``round`` and ``call`` say it
    and the message starts with them::

        >>> error = MLLMError("openai:gpt-4o refused to answer", backend="openai:gpt-4o")
        >>> str(error.at("critique", 2, "Critique"))
        'The critique after round 2 (Critique) failed: openai:gpt-4o refused to answer'
        >>> error.node, error.round, error.call
        ('critique', 2, 'Critique')
    """

    node: str | None = None
    """The loop's node that failed (``"describe"``, ``"propose"``, ``"generate"``, ``"score"``,
    ``"critique"``, ``"revise"``, ...), when known."""
    round: int | None = None
    """The round of that node (see :func:`call_site`; 0 for ``describe``), when known."""
    call: str | None = None
    """The request that failed: the schema asked of the MLLM (e.g. ``"Critique"``,
    ``"GlobalDescription"``), or the kind of request (``"generate"``, ``"score"``), when known."""

    thread_id: str | None = None
    """The checkpoint thread of the failed run: ``Repainter.resume(thread_id)`` continues it."""
    partial_result: RepaintResult | None = None
    """What the run had finished (rounds, and images of a round not closed) when it failed."""

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(message)
        self.backend = backend
        """The name of the backend that failed, when known."""

    def at(self, node: str, round: int, call: str) -> BackendError:
        """Record where the error happened and say it in the message; returns ``self``.

        An error that already knows its place keeps it (the innermost step is the one that failed).
        """
        if self.node is None:
            self.node, self.round, self.call = node, round, call
            where = call_site(node, round)
            message = str(self.args[0]) if self.args else ""
            self.args = (f"{where[0].upper()}{where[1:]} ({call}) failed: {message}", *self.args[1:])
        return self


class MLLMError(BackendError):
    """The multimodal language model failed (after the retries the policy allows).

    What the failed call cost is kept, so a run's ``usage`` counts it: ``requests`` (HTTP
    requests the call made, failed ones included) and the tokens of answers that arrived but
    could not be used (a refusal, replies that never validated).
    """

    requests: int = 0
    """HTTP requests (or model invocations) the failed call made, when the backend counts them."""
    input_tokens: int = 0
    """Input tokens of the answers the failed call received."""
    output_tokens: int = 0
    """Output tokens of the answers the failed call received."""


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


class ModelLoadError(BackendError):
    """A text-to-image model could not be built or loaded (weights missing, a bad folder, out of memory).

    Asking again in the same evaluation cannot help, so the benchmark stops that model's cases at
    once (its circuit breaker opens) and goes on with the other models; a later evaluation tries it
    again. The original error is kept as ``__cause__`` and named in the message.
    """
