"""Keep API keys out of messages, logs and files: the one place that knows what a secret looks like.

Every redaction and every refusal in the package asks this module:

* :func:`redact` masks known secret values, anything shaped like an API key, ``Bearer``
  tokens and the credentials inside URLs (user names and passwords, key-like query
  parameters, token-like path segments). Every exception message built from a backend's
  error passes through it.
* :func:`is_secret_name` tells whether an option, query parameter or attribute name holds a
  credential (``api_key``, ``token``, ``password``...); :func:`may_hold_secret` also counts the
  options whose values can carry one (``base_url``, ``default_headers``...).
* :func:`shown` is how an error quotes a value it refuses: the value itself, unless it may be
  a secret.
* :func:`url_credentials` says what credential a URL carries, so a run folder can refuse to
  save it; :func:`register_model_keys` remembers the key a LangChain chat model holds.

Example:
    >>> redact("bad key sk-proj-abcdefghijklmnop0123 given")
    'bad key sk-*** given'
    >>> redact("groq key gsk_abcdefghijklmnop0123")
    'groq key gsk-***'
    >>> register_secret("hunter2-secret-value"); redact("token=hunter2-secret-value")
    'token=***'
    >>> redact("see http://bob:pw@host:8000/v1/Tk9aR4xQ2mLp7vWz8YbC1dE?api_key=abc&x=1")
    'see http://***@host:8000/v1/***?api_key=***&x=1'
    >>> shown("soon"), shown("SECRETTOKEN-4242-abcdef-9999")
    ("'soon'", 'a value of 28 characters (not shown: it may be a secret)')
    >>> is_secret_name("openai_api_key"), is_secret_name("temperature"), may_hold_secret("base_url")
    (True, False, True)
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from .errors import ConfigurationError

__all__ = [
    "KEY_ATTRIBUTES",
    "SECRET_ENV_VARS",
    "is_secret_name",
    "looks_like_token",
    "may_hold_secret",
    "redact",
    "redact_url",
    "refuse_credentials",
    "register_model_keys",
    "register_secret",
    "shown",
    "spec_credential",
    "url_credentials",
]

SECRET_ENV_VARS = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "ANTHROPIC_API_KEY")
"""Environment variables whose values are always masked."""

KEY_ATTRIBUTES = ("openai_api_key", "api_key", "anthropic_api_key", "google_api_key", "groq_api_key")
"""Attributes where LangChain chat models keep their API key (a ``SecretStr``)."""

_SECRET_NAME = re.compile(
    r"(^|[_-])(key|apikey|token|secret|password|passwd|pwd|auth|authorization|credentials?|sig|signature)$", re.I
)
"""Names of options, query parameters and attributes that carry credentials (``api_key``, ``token``...)."""

_CARRIERS = frozenset(
    {"base_url", "openai_api_base", "api_base", "endpoint", "default_headers", "default_query", "organization"}
)
"""Options whose values may hold credentials (tokens in URLs or headers) without being named like one."""

_KEY_PATTERN = re.compile(r"\b(sk|pk|rk|hf|gsk|xai)[-_][A-Za-z0-9_\-]{8,}")
"""Shapes of common provider keys: OpenAI ``sk-``, Hugging Face ``hf_``, Groq ``gsk_``, xAI ``xai-``."""
_BEARER = re.compile(r"(Bearer\s+)[^\s\"']+", re.IGNORECASE)
_URL = re.compile(r"\bhttps?://[^\s\"'<>`]+", re.IGNORECASE)
_RANDOM_RUN = re.compile(r"[A-Za-z0-9]{16,}")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-~+/=]+")
_SHOWN_MAX = 12
"""Longest value an error quotes back; longer ones may be keys pasted into the wrong option."""

_known: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so :func:`redact` masks it wherever it appears (ignores short values)."""
    if value and len(value) >= 6:
        with _lock:
            _known.add(value)


def register_model_keys(model: Any) -> None:
    """Remember the API key a LangChain chat model holds (in any of :data:`KEY_ATTRIBUTES`)."""
    for attribute in KEY_ATTRIBUTES:
        key = getattr(model, attribute, None)
        if key is not None and hasattr(key, "get_secret_value"):
            register_secret(key.get_secret_value())
        elif isinstance(key, str):
            register_secret(key)


def is_secret_name(name: str) -> bool:
    """Tell whether an option, query parameter or attribute called ``name`` holds a credential."""
    return bool(_SECRET_NAME.search(name))


def may_hold_secret(name: str) -> bool:
    """Tell whether the value of option ``name`` may carry a credential (a key, or a URL or header holding one)."""
    return is_secret_name(name) or name.lower() in _CARRIERS or name.lower().endswith("_url")


def looks_like_token(text: str) -> bool:
    """Tell whether ``text`` is shaped like a key or token rather than a word, number or name.

    A provider key (``sk-...``), a value registered as secret, or a random-looking string: 16 or
    more letters and digits in a row mixing both (hex digests, base64), or 24 or more token
    characters (no dots) mixing upper case, lower case and digits. Model names such as
    ``gpt-4o-mini-2024-07-18`` or ``Meta-Llama-3.1-8B-Instruct`` are not tokens.

    Example:
        >>> [looks_like_token(t) for t in ("gpt-4o-mini-2024-07-18", "a94a8fe5ccb19ba61c4c0873d391e98798")]
        [False, True]
    """
    if _KEY_PATTERN.search(text) or any(secret in text for secret in _secrets_now()):
        return True
    for run in _RANDOM_RUN.findall(text):
        if re.search(r"\d", run) and re.search(r"[A-Za-z]", run):
            return True
    return any(
        len(chunk) >= 24 and re.search(r"[a-z]", chunk) and re.search(r"[A-Z]", chunk) and re.search(r"\d", chunk)
        for chunk in _TOKEN_CHARS.findall(text)
    )


def shown(value: Any) -> str:
    """How an error quotes a value it refuses: ``repr(value)``, unless the value may be a secret.

    Short values that do not look like keys are shown (``'soon'``, ``'-1'``); longer ones or
    key-shaped ones are described by their length only.
    """
    text = str(value)
    if len(text) <= _SHOWN_MAX and not looks_like_token(text) and redact(text) == text:
        return repr(value)
    return f"a value of {len(text)} characters (not shown: it may be a secret)"


def url_credentials(url: str) -> str | None:
    """What credential ``url`` carries, or None: a user name or password, a key-like query
    parameter, or a path segment shaped like a token (percent-encoding is decoded first).

    Example:
        >>> url_credentials("http://user:pw@127.0.0.1:8000/v1")
        'a user name or password (user:password@host)'
        >>> url_credentials("https://host/v1?api_key=x"), url_credentials("https://host/v1") is None
        ("the query parameter 'api_key'", True)
    """
    parts = urlsplit(url)
    if not (parts.scheme and parts.netloc):
        return None
    if parts.username is not None or parts.password is not None:
        return "a user name or password (user:password@host)"
    path = unquote(parts.path)
    if "?" in path:  # an encoded query inside the path (%3F) still reaches the server
        path, _, inner = path.partition("?")
        if problem := _query_problem(inner):
            return problem
    if problem := _query_problem(parts.query):
        return problem
    if any(looks_like_token(segment) for segment in path.split("/") if segment):
        return "a path segment shaped like a key or token"
    return None


def _query_problem(query: str) -> str | None:
    for name, value in parse_qsl(query, keep_blank_values=True):
        if is_secret_name(name) or looks_like_token(value):
            return f"the query parameter {name!r}"
    return None


def redact_url(url: str) -> str:
    """``url`` with its credentials masked: user info, key-like query values, token-like path segments."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # not a URL after all (e.g. a bad port): mask it whole if it holds anything key-like
        return "***" if looks_like_token(url) else url
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        netloc = "***@" + host + (f":{port}" if port is not None else "")
    path = "/".join("***" if looks_like_token(unquote(s)) else s for s in parts.path.split("/"))
    query = "&".join(_redact_param(p) for p in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def _redact_param(param: str) -> str:
    name, eq, value = param.partition("=")
    if eq and (is_secret_name(unquote(name)) or looks_like_token(unquote(value))):
        return f"{name}=***"
    return param


def _secrets_now() -> set[str]:
    with _lock:
        secrets = set(_known)
    secrets.update(v for name in SECRET_ENV_VARS if (v := os.environ.get(name)) and len(v) >= 6)
    return secrets


def redact(text: str) -> str:
    """Return ``text`` with secrets masked (see the module docstring)."""
    for secret in sorted(_secrets_now(), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _BEARER.sub(r"\1***", text)
    return _KEY_PATTERN.sub(lambda m: f"{m.group(1)}-***", text)


def spec_credential(spec: str) -> str | None:
    """The credential a backend spec (``provider:model?k=v``) holds, in words that never repeat it,
    or ``None``: the package's one rule for what a recorded spec must not hold.

    A credential is an option named like one (``api_key``, ``token``), something shaped like a
    key (``sk-...``) or an environment secret's value, or a URL option (``base_url``) holding a
    user name or password (``http://user:pw@host``), a key-like query parameter (``?key=...``)
    or a path segment shaped like a token.

    Example:
        >>> spec_credential("openai:gpt-4o?base_url=http://user:pw@host/v1")
        'something shaped like an API key'
        >>> spec_credential("openai:gpt-4o?api_key=abc"), spec_credential("openai:gpt-4o?temperature=0")
        ("the option 'api_key'", None)
    """
    if redact(spec) != spec:
        return "something shaped like an API key"
    for name, value in parse_qsl(spec.strip().partition("?")[2], keep_blank_values=True):
        if is_secret_name(name):
            return f"the option {name!r}"
        if found := url_credentials(value):
            return f"{found} in its {name}"
    return None


def refuse_credentials(specs: Mapping[str, str], *, recorded_in: str) -> None:
    """Refuse backend specs (by label: ``{"MLLM": "openai:gpt-4o", ...}``) that hold a credential
    (:func:`spec_credential`), because ``recorded_in`` (e.g. ``"Run folders record the specs in
    run.json"``) saves them. The message never repeats the value.

    Raises:
        ConfigurationError: a spec holds a credential.
    """
    for label, spec in specs.items():
        if problem := spec_credential(spec):
            raise ConfigurationError(
                f"The {label} spec holds {problem}. {recorded_in}, so they must hold no credentials: pass the URL "
                "without it (e.g. --base-url http://host:port/v1) and put the key in the environment "
                "(OPENAI_API_KEY), which is sent in a request header and never saved."
            )
