"""Keep API keys out of messages, logs and files.

:func:`redact` masks known secret values and anything shaped like an API key. Every
exception message built from a backend's error passes through it.

Example:
    >>> redact("bad key sk-proj-abcdefghijklmnop0123 given")
    'bad key sk-*** given'
    >>> redact("groq key gsk_abcdefghijklmnop0123")
    'groq key gsk-***'
    >>> register_secret("hunter2-secret-value"); redact("token=hunter2-secret-value")
    'token=***'
"""

from __future__ import annotations

import os
import re
import threading

__all__ = ["SECRET_ENV_VARS", "redact", "register_secret"]

SECRET_ENV_VARS = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "ANTHROPIC_API_KEY")
"""Environment variables whose values are always masked."""

_KEY_PATTERN = re.compile(r"\b(sk|pk|rk|hf|gsk|xai)[-_][A-Za-z0-9_\-]{8,}")
"""Shapes of common provider keys: OpenAI ``sk-``, Hugging Face ``hf_``, Groq ``gsk_``, xAI ``xai-``."""
_BEARER = re.compile(r"(Bearer\s+)[^\s\"']+", re.IGNORECASE)
_known: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so :func:`redact` masks it wherever it appears (ignores short values)."""
    if value and len(value) >= 6:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """Return ``text`` with secrets masked."""
    secrets = set(_known)
    secrets.update(v for name in SECRET_ENV_VARS if (v := os.environ.get(name)) and len(v) >= 6)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _BEARER.sub(r"\1***", text)
    return _KEY_PATTERN.sub(lambda m: f"{m.group(1)}-***", text)
