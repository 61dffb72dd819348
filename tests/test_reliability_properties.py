"""Property-based tests: whatever arrives, the library answers with a usable value or a typed error.

* Image loading (:func:`imagerepainter.images.load_image`): arbitrary bytes, every Pillow mode
  and size in every common format, truncated files -> a normalised RGB image of the same size,
  or an :class:`~imagerepainter.errors.InvalidImageError`; never another exception.
* Structured MLLM output (:class:`~imagerepainter.backends.ChatModelMLLM`): arbitrary JSON,
  truncated JSON, schema-violating JSON, prose around JSON, tool-call arguments -> a validated
  schema instance, or an :class:`~imagerepainter.errors.MLLMError`; never another exception.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import BaseModel

from imagerepainter.backends import ChatModelMLLM, MLLMMessage, RetryPolicy
from imagerepainter.errors import InvalidImageError, MLLMError
from imagerepainter.images import load_image
from imagerepainter.loop import schemas
from imagerepainter.testing import fake_answer

pytest.importorskip("langchain_core")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")  # Pillow on a cut TIFF

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------- image loading

MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "I", "I;16", "F", "CMYK", "YCbCr", "RGBX"]
FORMATS = ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"]


def _loads_or_refuses(source: Any, **kwargs: Any) -> Image.Image | None:
    """``load_image(source)``: the image, or None when refused with a typed error (any other raise fails)."""
    try:
        image = load_image(source, **kwargs)
    except InvalidImageError as exc:  # ImageTooLargeError included
        assert str(exc).strip() and "\n" not in str(exc)  # one line that says what is wrong
        return None
    assert image.mode == "RGB" and image.width >= 1 and image.height >= 1
    image.tobytes()  # fully decoded
    return image


def _image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    if mode in ("I", "F"):
        return Image.fromarray(rng.normal(0, 300, (height, width)).astype(np.int32 if mode == "I" else np.float32))
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return rgb.convert(mode)


@PROPERTY
@given(data=st.binary(max_size=4096))
def test_arbitrary_bytes_load_or_are_refused_with_a_typed_error(data: bytes) -> None:
    _loads_or_refuses(data)


@PROPERTY
@given(
    mode=st.sampled_from(MODES),
    width=st.integers(1, 48),
    height=st.integers(1, 48),
    fmt=st.sampled_from(FORMATS),
    seed=st.integers(0, 2**16),
)
def test_every_mode_size_and_format_loads_as_rgb_of_the_same_size(
    mode: str, width: int, height: int, fmt: str, seed: int
) -> None:
    buf = io.BytesIO()
    try:
        _image(mode, width, height, seed).save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        assume(False)  # this format cannot hold this mode: nothing to load
    image = _loads_or_refuses(buf.getvalue())
    assert image is not None and image.size == (width, height)
    assert _loads_or_refuses(_image(mode, width, height, seed)) is not None  # a PIL image in that mode too


@PROPERTY
@given(
    fmt=st.sampled_from(["PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP"]),
    cut=st.floats(0.0, 1.0, exclude_max=True),
    garbage=st.binary(max_size=64),
    seed=st.integers(0, 2**16),
)
def test_truncated_or_corrupted_files_load_or_are_refused(fmt: str, cut: float, garbage: bytes, seed: int) -> None:
    buf = io.BytesIO()
    _image("RGB", 24, 16, seed).save(buf, format=fmt)
    data = buf.getvalue()
    _loads_or_refuses(data[: int(len(data) * cut)] + garbage)


@PROPERTY
@given(width=st.integers(1, 4000), height=st.integers(1, 4000), limit=st.integers(1, 10_000))
def test_the_pixel_limit_refuses_from_the_header(width: int, height: int, limit: int) -> None:
    image = Image.new("L", (width, height))
    loaded = _loads_or_refuses(image, max_pixels=limit)
    assert (loaded is None) == (width * height > limit)


def test_non_finite_pixels_are_refused() -> None:
    pixels = np.zeros((4, 4), dtype=np.float32)
    pixels[1, 2] = np.nan
    assert _loads_or_refuses(Image.fromarray(pixels)) is None


# ----------------------------------------------------------------------------- structured output

SCHEMAS: list[type[BaseModel]] = [
    schemas.GlobalDescription,
    schemas.GlobalFeatures,
    schemas.ObjectList,
    schemas.PersonDetails,
    schemas.ThingDetails,
    schemas.Relationships,
    schemas.PromptRewrite,
    schemas.PromptVariants,
    schemas.RevisedPrompt,
    schemas.Critique,
    schemas.CritiqueAndRevision,
]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


def _valid(schema: type[BaseModel]) -> dict[str, Any]:
    return fake_answer(schema, "a red circle", {"count": 2, "objects": ["a", "b"]}).model_dump(mode="json")


@st.composite
def _replies(draw: st.DrawFn, schema: type[BaseModel]) -> str:
    """Text a model might send for ``schema``: valid, mutated, truncated, wrapped, or anything at all."""
    valid = _valid(schema)
    kind = draw(st.sampled_from(["valid", "mutated", "truncated", "wrapped", "arbitrary_json", "text"]))
    if kind == "valid":
        return json.dumps(valid)
    if kind == "mutated":  # a field dropped, retyped, or an extra one
        field = draw(st.sampled_from(sorted(valid)))
        mutated = dict(valid)
        if draw(st.booleans()):
            mutated.pop(field)
        else:
            mutated[field] = draw(JSON)
        mutated.update(draw(st.dictionaries(st.text(max_size=8), JSON, max_size=2)))
        return json.dumps(mutated)
    if kind == "truncated":
        text = json.dumps(valid)
        return text[: draw(st.integers(0, len(text) - 1))]
    if kind == "wrapped":
        fence = draw(st.sampled_from(["```json\n{}\n```", "Here it is: {} Thanks!", "{}\n\n(end)"]))
        return fence.replace("{}", json.dumps(valid), 1)
    if kind == "arbitrary_json":
        return json.dumps(draw(JSON))
    return draw(st.text(max_size=200))


def _ask(schema: type[BaseModel], reply: AIMessage | str, method: str = "json_text") -> BaseModel | None:
    """One structured call answered by ``reply``: the value, or None when refused with an MLLMError."""
    message = reply if isinstance(reply, AIMessage) else AIMessage(content=reply)
    model = GenericFakeChatModel(messages=iter([message]))
    mllm = ChatModelMLLM(model, methods=[method], max_reasks=0, retry=RetryPolicy(max_attempts=1))  # type: ignore[list-item]
    try:
        answer = mllm.structured([MLLMMessage(text="Describe.")], schema)
    except MLLMError as exc:
        assert str(exc).strip() and exc.requests == 1  # the failed call still counts its request
        return None
    assert isinstance(answer.value, schema) and answer.requests == 1
    return answer.value


@PROPERTY
@given(data=st.data(), schema=st.sampled_from(SCHEMAS))
def test_any_reply_text_gives_a_valid_answer_or_a_typed_error(data: st.DataObject, schema: type[BaseModel]) -> None:
    reply = data.draw(_replies(schema))
    value = _ask(schema, reply)
    if reply == json.dumps(_valid(schema)):
        assert value is not None and value.model_dump(mode="json") == _valid(schema)


@PROPERTY
@given(schema=st.sampled_from(SCHEMAS), args=st.dictionaries(st.text(max_size=12), JSON, max_size=6))
def test_any_tool_call_arguments_give_a_valid_answer_or_a_typed_error(
    schema: type[BaseModel], args: dict[str, Any]
) -> None:
    mllm = ChatModelMLLM(GenericFakeChatModel(messages=iter([])), methods=["function_calling"])
    message = AIMessage(content="", tool_calls=[{"name": schema.__name__, "args": args, "id": "call-1"}])
    raw, value, problem = mllm._parse("function_calling", message, schema)
    assert (value is None) != (problem is None)
    assert value is None or isinstance(value, schema)
    assert raw is None or isinstance(raw, str)
