"""Prices for the benchmark's cost ledger: a small TOML file you write, no price built in.

Prices change, so the library knows none: an evaluation counts what it used (calls, tokens,
images, seconds: the ledger, see :mod:`~imagerepainter.bench.costs`) and turns that into
dollars only with a prices file (``imagerepainter eval --prices prices.toml``,
``evaluate(..., prices="prices.toml")``). The file::

    currency = "USD"                 # a label for the reports; optional

    [mllm."openai:gpt-4o"]           # the --mllm spec, without its ?options
    input_per_million = 2.50         # dollars per million input (prompt) tokens
    output_per_million = 10.00       # dollars per million output (completion) tokens

    [t2i.sdxl]                       # a --t2i NAME (the name, not the spec)
    per_gpu_hour = 2.00              # dollars per hour of the case's rendering time

    [t2i.dalle]
    per_image = 0.04                 # dollars per rendered image

Each model takes exactly one T2I price, ``per_image`` or ``per_gpu_hour``. Every model of
the run and its MLLM must have a price (a run priced in part would report wrong totals), so
a missing one is refused before anything runs, naming the file and the closest entries;
entries for models the run does not use are allowed (one file can price many runs).

Example:
    >>> prices = Prices.model_validate({"mllm": {"sandbox": {"input_per_million": 1, "output_per_million": 2}},
    ...                                 "t2i": {"a": {"per_image": 0.5}}})
    >>> prices.mllm_dollars("sandbox", input_tokens=1_000_000, output_tokens=500_000)
    2.0
    >>> prices.t2i_dollars("a", images=3, seconds=9.0)
    1.5
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigurationError

__all__ = ["MLLMPrice", "Prices", "T2IPrice", "load_prices", "mllm_key"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MLLMPrice(_Strict):
    """What an MLLM costs, in dollars per million tokens."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class T2IPrice(_Strict):
    """What a text-to-image model costs: per image (a hosted API) or per GPU-hour (your own GPU)."""

    per_image: float | None = Field(default=None, ge=0)
    per_gpu_hour: float | None = Field(default=None, ge=0)
    """Charged for the case's T2I seconds (its render steps' wall time; see :mod:`~imagerepainter.bench.costs`)."""

    @model_validator(mode="after")
    def _one_price(self) -> T2IPrice:
        if (self.per_image is None) == (self.per_gpu_hour is None):
            raise ValueError("give exactly one of per_image or per_gpu_hour")
        return self

    def dollars(self, *, images: int, seconds: float) -> float:
        """The price of ``images`` rendered in ``seconds``."""
        if self.per_image is not None:
            return images * self.per_image
        return seconds / 3600 * (self.per_gpu_hour or 0.0)


class Prices(_Strict):
    """The prices of one evaluation's models (see the module docstring for the file)."""

    currency: str = "USD"
    mllm: dict[str, MLLMPrice] = Field(default_factory=dict)
    """By MLLM: the spec without ``?options`` (see :func:`mllm_key`)."""
    t2i: dict[str, T2IPrice] = Field(default_factory=dict)
    """By model name (``--t2i NAME=SPEC``)."""
    source: str = Field(default="the prices", exclude=True)
    """Where the prices came from (named in errors)."""

    def mllm_dollars(self, model: str, *, input_tokens: int, output_tokens: int) -> float:
        """The price of ``model``'s tokens."""
        price = self._price(self.mllm, "mllm", model)
        return (input_tokens * price.input_per_million + output_tokens * price.output_per_million) / 1e6

    def t2i_dollars(self, model: str, *, images: int, seconds: float) -> float:
        """The price of ``images`` rendered by ``model`` in ``seconds``."""
        return self._price(self.t2i, "t2i", model).dollars(images=images, seconds=seconds)

    def check_covers(self, *, mllm: Iterable[str], models: Iterable[str]) -> None:
        """Refuse prices that miss an MLLM or a model of the run, naming the file and the closest entries.

        Raises:
            ConfigurationError: a model of the run has no price.
        """
        for table, names in (("mllm", mllm), ("t2i", models)):
            for name in names:
                self._price(getattr(self, table), table, name)

    def _price(self, table: Mapping[str, Any], kind: str, name: str) -> Any:
        price = table.get(name)
        if price is None:
            close = difflib.get_close_matches(name, list(table), n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigurationError(
                f"{self.source} has no price for {kind} {name!r}: add a [{kind}.{_toml_key(name)}] table "
                f"(see examples/prices.toml).{hint} Priced {kind}: {sorted(table) or 'none'}."
            )
        return price


def mllm_key(spec: Any) -> str:
    """How an MLLM is named in prices and ledgers: a spec string without its ``?options``, else
    the object's ``model_name``, ``model`` or ``name`` attribute, else its class name.

    Example:
        >>> mllm_key("openai:gpt-4o?base_url=http://127.0.0.1:8000/v1"), mllm_key("sandbox")
        ('openai:gpt-4o', 'sandbox')
    """
    if isinstance(spec, str):
        return spec.split("?", 1)[0].strip()
    for attribute in ("model_name", "model", "name"):
        value = getattr(spec, attribute, None)
        if isinstance(value, str) and value:
            return value
    return type(spec).__name__


def load_prices(prices: Prices | Mapping[str, Any] | str | os.PathLike[str]) -> Prices:
    """The prices given as a :class:`Prices`, a mapping of the file's shape, or a TOML file's path.

    Raises:
        ConfigurationError: the file is missing or not TOML, or a value is wrong; the message names
            the file and the key.
    """
    if isinstance(prices, Prices):
        return prices
    if isinstance(prices, Mapping):
        return _validated(dict(prices), "the prices")
    path = Path(prices)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"Prices file {str(path)!r} does not exist; see examples/prices.toml.") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"Prices file {str(path)!r} is not readable TOML: {exc}") from None
    return _validated(data, f"prices file {str(path)!r}")


def _validated(data: dict[str, Any], source: str) -> Prices:
    try:
        return Prices.model_validate({**data, "source": source})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        count = len(exc.errors())
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        raise ConfigurationError(f"{source}: {key or 'top level'}: {message}{more}.") from None


def _toml_key(name: str) -> str:
    """``name`` as a TOML key (quoted unless bare)."""
    bare = name.replace("-", "").replace("_", "").isalnum() and name.isascii()
    return name if bare else f'"{name}"'
