"""Faults the local OpenAI server injects: error statuses, slow answers, malformed bodies, dropped connections.

Queue them with :meth:`~imagerepainter._openai_wire.server.OpenAICompatibleServer.inject` or
:meth:`~imagerepainter._openai_wire.server.OpenAICompatibleServer.fail_every`, or return one
from a responder. Users import :class:`Fault` from :mod:`imagerepainter.testing.openai_server`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Fault"]


@dataclass(frozen=True, kw_only=True)
class Fault:
    """Something that goes wrong with one request. Build with the class methods.

    ``path`` restricts a fault to requests whose path contains it (e.g. ``"/images/"``).
    """

    kind: Literal["status", "timeout", "malformed", "disconnect"]
    code: int = 500
    """HTTP status of a ``status`` fault."""
    retry_after: float | None = None
    """Seconds sent as ``retry-after-ms`` and ``retry-after``."""
    seconds: float = 0.0
    """How long a ``timeout`` fault waits before answering normally."""
    message: str | None = None
    error_code: str | None = None
    """``error.code`` in the body, e.g. ``"content_policy_violation"``."""
    error_type: str | None = None
    path: str | None = None

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        error_code: str | None = None,
        error_type: str | None = None,
        path: str | None = None,
    ) -> Fault:
        """An HTTP error answer with OpenAI's error body.

        Example:
            >>> Fault.status(429, retry_after=0.01).code
            429
        """
        return cls(
            kind="status",
            code=code,
            retry_after=retry_after,
            message=message,
            error_code=error_code,
            error_type=error_type,
            path=path,
        )

    @classmethod
    def timeout(cls, seconds: float, *, path: str | None = None) -> Fault:
        """Wait ``seconds`` (longer than the client's timeout) before answering."""
        return cls(kind="timeout", seconds=seconds, path=path)

    @classmethod
    def malformed(cls, *, path: str | None = None) -> Fault:
        """Answer 200 with a body that is not valid JSON."""
        return cls(kind="malformed", path=path)

    @classmethod
    def disconnect(cls, *, path: str | None = None) -> Fault:
        """Close the connection without answering."""
        return cls(kind="disconnect", path=path)

    def applies_to(self, path: str) -> bool:
        """Whether this fault targets ``path``."""
        return self.path is None or self.path in path
