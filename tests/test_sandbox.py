"""The offline sandbox world: vocabulary, renderer, perceiving model, scorer and the loop over them."""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel

from imagerepainter.backends.base import MLLM, GenerationRequest, MLLMMessage, Scorer, TextToImage
from imagerepainter.errors import ConfigurationError, MLLMError, StructuredOutputError
from imagerepainter.loop import schemas
from imagerepainter.sandbox import (
    PALETTE,
    SandboxMLLM,
    SandboxScorer,
    SandboxT2I,
    Scene,
    Shape,
    answer,
    apply_edits,
    describe_reference,
    parse_prompt,
    perceive,
    prompt_variants,
    random_scene,
    read_marker,
    render_scene,
    review,
    sandbox_selfcheck,
    similarity,
)
from imagerepainter.sandbox.colors import BASIC_TERMS, delta_e, nearest_name
from imagerepainter.sandbox.perception import label_components

SCHEMA_NAMES = [n for n in schemas.__all__ if n not in ("DetectedObject", "ObjectType", "ElementVerdict")]


def _photo(folder: Path, name: str) -> Image.Image:
    with Image.open(folder / name) as image:
        return image.convert("RGB")


# ----------------------------------------------------------------------------- vocabulary


@pytest.mark.parametrize("style", ["sd", "natural"])
def test_prompt_round_trips_for_random_scenes(style: Literal["sd", "natural"]) -> None:
    for seed in range(40):
        scene = random_scene(seed)
        assert parse_prompt(scene.to_prompt(style)) == scene, scene.to_prompt(style)


def test_parser_ignores_unknown_words_and_reads_sentences() -> None:
    tags = parse_prompt(
        "masterpiece, best quality, 8k, a large red circle at top left, highly detailed, navy background"
    )
    assert tags == Scene(PALETTE["navy"], (Shape("circle", PALETTE["red"], 0.38, 0.2, 0.2),))
    sentences = parse_prompt("The background is navy. A large red disc sits in the top-left corner of the image.")
    assert sentences == tags


def test_a_colour_named_again_with_an_unknown_noun_is_the_blob_already_placed() -> None:
    # the loop's assembled description names each object again in its details ("green photographed surface")
    placed = parse_prompt("a large green blob at bottom left, large green photographed surface, red sky")
    assert [(s.kind, s.color, s.x, s.y) for s in placed.shapes] == [
        ("blob", PALETTE["green"], 0.2, 0.8),
        ("blob", PALETTE["red"], 0.5, 0.5),
    ]
    assert len(parse_prompt("green grass, a green circle at top left").shapes) == 2  # another kind: a new shape


def test_parser_reads_counts_coordinates_shades_and_rotations() -> None:
    scene = parse_prompt(
        "three small gold stars at bottom center, a #102030 square of size 12% at (0.3, 0.4) rotated 30 degrees, "
        "a light teal vertical bar at x=70% y=20%, rgb(250, 0, 0) ring, on a white backdrop"
    )
    kinds = [s.kind for s in scene.shapes]
    assert kinds == ["star", "star", "star", "square", "rectangle", "ring"]
    stars = scene.shapes[:3]
    assert all(s.color == PALETTE["gold"] and s.y == 0.8 for s in stars)
    assert stars[0].x < stars[1].x == 0.5 < stars[2].x
    square = scene.shapes[3]
    assert (square.color, square.size, square.x, square.y, square.rotation) == ((16, 32, 48), 0.12, 0.3, 0.4, 30.0)
    bar = scene.shapes[4]
    assert (bar.rotation, bar.x, bar.y) == (90.0, 0.7, 0.2)
    assert delta_e(bar.color, PALETTE["teal"]) > 10  # "light teal" is lighter than teal
    assert scene.shapes[5].color == (250, 0, 0)
    assert scene.background == PALETTE["white"]


def test_parser_treats_bare_rementions_as_references() -> None:
    text = (
        "A flat picture of a large blue circle at top left and a medium red square at center, on a white background.\n"
        "Objects: large blue circle at top left; medium red square at center.\n"
        "The large blue circle at top left is left of the medium red square at center. The blue circle is above it."
    )
    scene = parse_prompt(text)
    assert [(s.kind, s.x, s.y) for s in scene.shapes] == [("circle", 0.2, 0.2), ("square", 0.5, 0.5)]


def test_parser_draws_what_it_can_from_a_photo_prompt() -> None:
    scene = parse_prompt("a golden retriever sitting on green grass under a blue sky, photorealistic, dominant tones")
    assert {nearest_name(s.color) for s in scene.shapes} == {"gold", "green", "blue"}
    assert all(s.kind == "blob" for s in scene.shapes)
    palette_only = parse_prompt("Dominant colours: dark green and beige; soft morning light")
    assert palette_only.background == PALETTE["dark green"] and not palette_only.shapes
    assert parse_prompt("a cinematic photo, 35mm").background == PALETTE["light gray"]


# ----------------------------------------------------------------------------- renderer


def test_renderer_is_deterministic_and_seeds_matter_only_slightly() -> None:
    t2i = SandboxT2I()
    assert isinstance(t2i, TextToImage) and t2i.name == "sandbox"
    prompt = random_scene(5).to_prompt()
    a, b, c = (
        g.image
        for g in t2i.generate(
            [
                GenerationRequest(prompt=prompt, seed=1),
                GenerationRequest(prompt=prompt, seed=1),
                GenerationRequest(prompt=prompt, seed=2),
            ]
        )
    )
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    other = t2i.generate([GenerationRequest(prompt=random_scene(6).to_prompt(), seed=1)])[0].image
    assert similarity(a, c) > 0.9 > 0.7 > similarity(a, other)


def test_renderer_honours_size_and_rejects_absurd_sizes() -> None:
    [out] = SandboxT2I().generate([GenerationRequest(prompt="a red circle", seed=0, width=320, height=200)])
    assert out.image.size == (320, 200) and out.image.mode == "RGB" and not out.blocked
    with pytest.raises(ConfigurationError, match="at least 8x8"):
        render_scene(Scene(), 4, 4)


def test_a_more_accurate_prompt_renders_closer() -> None:
    scene = random_scene(11)
    reference = render_scene(scene, seed=99)
    exact = render_scene(scene, seed=1)
    shifted = render_scene(
        Scene(scene.background, tuple(Shape(s.kind, s.color, s.size, s.x + 0.06, s.y) for s in scene.shapes)), seed=1
    )
    wrong_bg = render_scene(
        Scene(PALETTE["black"] if scene.background != PALETTE["black"] else PALETTE["white"], scene.shapes), seed=1
    )
    scores = [similarity(reference, image) for image in (exact, shifted, wrong_bg)]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0.9


# ----------------------------------------------------------------------------- perception


def _bfs_labels(classes: np.ndarray) -> np.ndarray:
    h, w = classes.shape
    labels = -np.ones((h, w), dtype=int)
    n = 0
    for i in range(h):
        for j in range(w):
            if classes[i, j] < 0 or labels[i, j] >= 0:
                continue
            stack, labels[i, j] = [(i, j)], n
            while stack:
                a, b = stack.pop()
                for x, y in ((a + 1, b), (a - 1, b), (a, b + 1), (a, b - 1)):
                    if 0 <= x < h and 0 <= y < w and labels[x, y] < 0 and classes[x, y] == classes[a, b]:
                        labels[x, y] = n
                        stack.append((x, y))
            n += 1
    return labels


def test_label_components_matches_a_flood_fill() -> None:
    rng = np.random.default_rng(0)
    for t in range(60):
        classes = rng.integers(-1, 3, size=(5 + t % 17, 4 + t % 11))
        labels, count = label_components(classes)
        expected = _bfs_labels(classes)
        assert count == expected.max() + 1
        assert np.array_equal(labels, expected)


def test_perception_recovers_shapes_colours_and_positions() -> None:
    counted = 0
    for seed in range(30):
        scene = random_scene(seed)
        seen = perceive(render_scene(scene, seed=seed))
        assert seen.background == scene.background or delta_e(seen.background, scene.background) < 2
        counted += len(seen.blobs) == len(scene.shapes)
        for shape in scene.shapes:
            blob = min(seen.blobs, key=lambda b: np.hypot(b.x - shape.x, b.y - shape.y))
            if np.hypot(blob.x - shape.x, blob.y - shape.y) < 0.03:
                assert nearest_name(blob.color) == nearest_name(shape.color)
                assert abs(blob.size - shape.size) < 0.04
    assert counted >= 27


def test_perception_of_a_photo_finds_dominant_blobs(evalref_dir: Path) -> None:
    seen = perceive(_photo(evalref_dir, "scene_1.png"))
    assert 1 <= len(seen.blobs) <= 12
    assert all(0 <= b.x <= 1 and 0 <= b.y <= 1 and b.area > 0 for b in seen.blobs)


# ----------------------------------------------------------------------------- the model


def _ask(schema: type[BaseModel], text: str, *images: Image.Image) -> BaseModel:
    return SandboxMLLM().structured([MLLMMessage(text=text, images=images)], schema).value


def test_read_marker_convention() -> None:
    text = (
        "System: compare.\n\nHistory:\nRound 1 prompt: old\nPrompt: first\n\n"
        "prompt:   a red circle,\n  at top left\nCount: 4 variants\nEdits:\n- move it\n2. recolour it\n\nend"
    )
    assert read_marker(text, "Prompt") == "a red circle,\nat top left"  # the last one wins
    assert read_marker(text, "Count") == "4 variants"
    assert read_marker(text, "Edits") == "- move it\n2. recolour it"
    assert read_marker(text, "Object") is None


def test_first_description_is_coarse_and_misses_small_shapes() -> None:
    scene = Scene(
        PALETTE["beige"],
        (Shape("circle", PALETTE["navy"], 0.3, 0.3, 0.3), Shape("star", PALETTE["crimson"], 0.08, 0.8, 0.8)),
    )
    reference = render_scene(scene, seed=3)
    objects = _ask(schemas.ObjectList, "List at most 5 objects.", reference).objects  # type: ignore[attr-defined]
    assert [o.name for o in objects] == ["medium blue circle at top left"]
    description = _ask(schemas.GlobalDescription, "Describe.", reference).description  # type: ignore[attr-defined]
    words = set(description.lower().replace(",", " ").replace(".", " ").split())
    assert "navy" not in words and "star" not in words and "white" in words  # beige is seen as white
    palette = _ask(schemas.GlobalFeatures, "Describe.", reference).color_palette  # type: ignore[attr-defined]
    assert all(word.strip(";,") in (*BASIC_TERMS, "background") for word in palette.split())


def test_object_list_respects_the_requested_maximum() -> None:
    scene = Scene(
        PALETTE["white"],
        tuple(Shape("square", PALETTE[c], 0.2, 0.2 + 0.3 * i, 0.5) for i, c in enumerate(["red", "blue", "green"])),
    )
    reference = render_scene(scene)
    assert len(_ask(schemas.ObjectList, "List at most 2 objects.", reference).objects) == 2  # type: ignore[attr-defined]
    assert len(_ask(schemas.ObjectList, "Name up to one object", reference).objects) == 1  # type: ignore[attr-defined]
    assert len(_ask(schemas.ObjectList, "List the objects.", reference).objects) == 3  # type: ignore[attr-defined]


def test_details_are_about_the_named_object() -> None:
    scene = Scene(
        PALETTE["white"],
        (Shape("square", PALETTE["red"], 0.3, 0.2, 0.5), Shape("star", PALETTE["blue"], 0.3, 0.8, 0.5)),
    )
    reference = render_scene(scene)
    names = [o.name for o in _ask(schemas.ObjectList, "at most 5 objects", reference).objects]  # type: ignore[attr-defined]
    for name, color, position in zip(names, ["red", "blue"], ["center left", "center right"], strict=True):
        details = _ask(schemas.ThingDetails, f"Describe it.\nObject: {name}\n\nBe brief.", reference)
        assert (details.color, details.position) == (color, position)  # type: ignore[attr-defined]


def test_prompt_rewrite_of_the_assembled_tree_keeps_each_object_once() -> None:
    scene = random_scene(4)
    reference = render_scene(scene, seed=4)
    description = describe_reference(SandboxMLLM(), reference)
    prompt = _ask(schemas.PromptRewrite, f"Write a prompt.\nDescription:\n{description}").prompt  # type: ignore[attr-defined]
    names = [o.name for o in _ask(schemas.ObjectList, "at most 5 objects", reference).objects]  # type: ignore[attr-defined]
    assert len(parse_prompt(prompt).shapes) == len(names)
    natural = _ask(schemas.PromptRewrite, f"Write natural-language sentences.\nDescription:\n{description}").prompt  # type: ignore[attr-defined]
    assert natural.endswith(".") and parse_prompt(natural) == parse_prompt(prompt)


def test_revised_prompt_applies_the_edits() -> None:
    text = (
        "Apply the edits.\n"
        "Prompt: a large red circle at top left, a small blue square at center, on a white background\n"
        "Edits:\n- change the background to navy\n- move the red circle at top left to 30% 35%\n"
        "- remove the blue square at center; add a tiny gold star at 80% 80%\n- make it pop\n"
    )
    revised = parse_prompt(_ask(schemas.RevisedPrompt, text).prompt)  # type: ignore[attr-defined]
    assert revised == Scene(
        PALETTE["navy"],
        (Shape("circle", PALETTE["red"], 0.38, 0.3, 0.35), Shape("star", PALETTE["gold"], 0.08, 0.8, 0.8)),
    )


def test_apply_edits_resolves_references_before_editing() -> None:
    scene = parse_prompt("a red circle at top left, a red square at bottom right, white background")
    edited = apply_edits(
        scene,
        [
            "change the color of the red circle at top left to teal",
            "resize the red circle at top left to size 30%",
            "change the red square at bottom right into a vertical rectangle",
            "make the red square at bottom right larger",
            "rotate the red square at bottom right to 90 degrees",
            "nonsense edit",
        ],
    )
    circle, bar = edited.shapes
    assert (circle.color, circle.size) == (PALETTE["teal"], 0.3)
    assert (bar.kind, bar.rotation, bar.size) == ("rectangle", 90.0, round(0.25 * 1.25, 3))


def test_variants_are_deterministic_distinct_rephrasings() -> None:
    prompt = random_scene(8).to_prompt()
    variants = prompt_variants(prompt, 4)
    assert len(variants) == 4 and variants == prompt_variants(prompt, 4)
    scenes = [parse_prompt(v) for v in variants]
    base = parse_prompt(prompt)
    assert all(s != base for s in scenes)
    assert all(
        len(s.shapes) == len(base.shapes) and [x.kind for x in s.shapes] == [x.kind for x in base.shapes]
        for s in scenes
    )
    reply = _ask(schemas.PromptVariants, f"Rephrase.\nPrompt: {prompt}\nCount: 2")
    assert len(reply.prompts) == 2  # type: ignore[attr-defined]


def test_critique_spots_missing_extra_and_matching_images() -> None:
    truth = parse_prompt("a large red circle at 30% 30%, a small blue star at 75% 70%, white background")
    drawn = parse_prompt("a large red circle at 30% 30%, a medium green square at 70% 25%, white background")
    result = review(perceive(render_scene(truth, seed=1)), perceive(render_scene(drawn, seed=2)), drawn)
    assert "add a small blue star at 75% 70%" in result.edits or any(
        e.startswith("add a") and "star" in e for e in result.edits
    )
    assert "remove the green square at 70% 25%" in result.edits
    assert not result.is_match
    same = review(perceive(render_scene(truth, seed=1)), perceive(render_scene(truth, seed=2)), truth)
    assert same.is_match and same.edits == ()
    reply = _ask(
        schemas.Critique,
        f"Compare.\nPrompt: {truth.to_prompt()}",
        render_scene(truth, seed=1),
        render_scene(truth, seed=2),
    )
    assert reply.is_match and reply.edits == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("schema_name", SCHEMA_NAMES)
def test_answer_validates_against_every_schema(schema_name: str, evalref_dir: Path) -> None:
    reference = render_scene(random_scene(2), seed=1)
    candidate = render_scene(random_scene(3), seed=1)
    prompt = random_scene(3).to_prompt()
    text = (
        f"Request for {schema_name}; at most 4 objects.\nObject: nothing like it\nPrompt: {prompt}\nCount: 2\n"
        "Edits:\n- change the background to navy\nDescription:\nA large red circle at center, white background."
    )
    schema = getattr(schemas, schema_name)
    for images in ([reference, candidate], [_photo(evalref_dir, "portrait_1.png"), candidate]):
        data = answer(schema_name, text, images, schema.model_json_schema())
        value = schema.model_validate(data)
        assert value.model_dump() == data
    if schema_name == "CritiqueAndRevision":
        assert len(data["variants"]) == 2


def test_answer_rejects_unknown_schemas_and_missing_images() -> None:
    with pytest.raises(StructuredOutputError, match="cannot answer 'Verdict'") as info:
        answer("Verdict", "hi", [])
    assert info.value.schema == "Verdict"
    with pytest.raises(MLLMError, match="needs 2 image"):
        answer("Critique", "Prompt: a red circle", [render_scene(Scene())])
    with pytest.raises(MLLMError, match="needs 1 image"):
        SandboxMLLM().structured([MLLMMessage(text="Describe.")], schemas.GlobalDescription)


def test_mllm_protocol_usage_and_thread_safety() -> None:
    mllm = SandboxMLLM()
    assert isinstance(mllm, MLLM) and mllm.capabilities.max_images_per_call == 2
    images = [render_scene(random_scene(s), seed=s) for s in range(6)]
    message = [MLLMMessage(text="Describe the image in one sentence.", images=(images[0],))]
    reply = mllm.structured(message, schemas.GlobalDescription)
    assert reply.requests == 1 and reply.usage.input_tokens > 85 and reply.usage.output_tokens > 5

    def describe(image: Image.Image) -> str:
        return mllm.structured(
            [MLLMMessage(text="Describe.", images=(image,))], schemas.GlobalDescription
        ).value.description

    sequential = [describe(i) for i in images]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(describe, images * 3)) == sequential * 3


def test_describing_a_real_photo_works(evalref_dir: Path) -> None:
    photo = _photo(evalref_dir, "object_1.png")
    mllm = SandboxMLLM()
    description = describe_reference(mllm, photo)
    assert "A photograph" in description
    prompt = _ask(schemas.PromptRewrite, f"Description:\n{description}").prompt  # type: ignore[attr-defined]
    scene = parse_prompt(prompt)
    assert 1 <= len(scene.shapes) <= 5  # each object once, though the assembled tree names it three times
    candidate = SandboxT2I().generate([GenerationRequest(prompt=prompt, seed=0, width=512, height=512)])[0].image
    critique = _ask(schemas.CritiqueAndRevision, f"Prompt: {prompt}\nCount: 2", photo, candidate)
    assert critique.edits and len(critique.variants) == 2  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- scorer and loop


def test_scorer_is_one_for_identical_images_and_falls_with_distance(evalref_dir: Path) -> None:
    scorer = SandboxScorer()
    assert isinstance(scorer, Scorer) and scorer.higher_is_better and scorer.bounds == (0.0, 1.0)
    scene = Scene(PALETTE["white"], (Shape("square", PALETTE["navy"], 0.3, 0.3, 0.5),))
    reference = render_scene(scene)
    prepared = scorer.prepare(reference)
    shifted = [
        render_scene(Scene(scene.background, (Shape("square", PALETTE["navy"], 0.3, 0.3 + d, 0.5),)))
        for d in (0, 0.03, 0.1, 0.3)
    ]
    scores = scorer.score(prepared, shifted)
    assert scores[0] == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(scores))
    assert all(
        0.0 <= s <= 1.0
        for s in scorer.score(prepared, [Image.new("RGB", (50, 80), "black"), _photo(evalref_dir, "scene_2.png")])
    )


def test_selfcheck_scores_rise_over_rounds() -> None:
    runs = [sandbox_selfcheck(seed, rounds=4) for seed in range(8)]
    improved = sum(r[3] > r[0] for r in runs)
    assert improved >= 7, runs
    assert np.mean([r[-1] for r in runs]) > np.mean([r[1] for r in runs]) > np.mean([r[0] for r in runs])


def test_selfcheck_paper_flow_and_determinism() -> None:
    a = sandbox_selfcheck(21, rounds=4, combined=False)
    assert a == sandbox_selfcheck(21, rounds=4, combined=False)
    assert a[-1] > a[0]


@pytest.mark.parametrize("photo", ["scene_23.png", "portrait_3.png", "object_5.png"])
def test_on_photographs_no_round_repeats_a_prompt_or_a_shape(photo: str, evalref_dir: Path) -> None:
    from imagerepainter import Repainter

    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=6, patience=None)
    result = rp.run(evalref_dir / photo)
    prompts = [r.prompt for r in result.rounds]
    assert len(set(prompts)) == len(prompts), prompts  # a worse round's revision is not tried again
    assert all(r.critique is not None for r in result.rounds[:-1])  # one critique after each round
    for prompt in prompts:
        shapes = [p.strip() for p in prompt.split(",") if " at " in p]
        assert len(set(shapes)) == len(shapes), prompt
        assert " a indigo" not in prompt and " a orange" not in prompt


# ----------------------------------------------------------------------------- drops, as the critic sees them


def _first_prompt(seed: int) -> Scene:
    """What the sandbox MLLM's first description of a generated scene asks for."""
    from imagerepainter.sandbox.describe import coarse_scene

    return coarse_scene(perceive(render_scene(random_scene(seed), 128, 128)))


def _critique_of_a_drop(seed: int, kind: str) -> tuple[str, ...]:
    """The edits for a render of a generated scene's own prompt that dropped ``kind``, against its exact render."""
    prompt = random_scene(seed)
    reference = perceive(render_scene(prompt, 128, 128))
    dropped = SandboxT2I(drop=kind).render(GenerationRequest(prompt=prompt.to_prompt(), seed=1, height=128, width=128))
    return review(reference, perceive(dropped), prompt, max_edits=10).edits


def test_the_critic_recolours_a_shape_drawn_in_another_colour_instead_of_adding_one() -> None:
    """drop=color draws each shape in its place in another colour: the edits recolour, never add or remove."""
    edits = [e for seed in range(2000, 2012) for e in _critique_of_a_drop(seed, "color")]
    shapes = sum(len(random_scene(seed).shapes) for seed in range(2000, 2012))
    assert sum(e.startswith("change the color of") for e in edits) >= shapes - 2
    assert not [e for e in edits if e.startswith(("add ", "remove "))]


def test_the_critic_moves_a_shape_drawn_a_cell_away_instead_of_adding_one() -> None:
    """drop=position draws every shape a grid cell off: the edits move shapes. A shape drawn onto the place
    of another of its kind can pass for that one recoloured (2 of the 46 shapes here): then one is added
    and one removed."""
    edits = [e for seed in range(2000, 2012) for e in _critique_of_a_drop(seed, "position")]
    shapes = sum(len(random_scene(seed).shapes) for seed in range(2000, 2012))
    assert sum(e.startswith("move ") for e in edits) >= shapes - 6
    assert len([e for e in edits if e.startswith(("add ", "remove "))]) <= 4


def test_the_critic_takes_a_shape_drawn_as_another_kind_for_itself_not_for_a_neighbour_of_that_kind() -> None:
    """drop=object draws each shape in its place as another kind, which may be a neighbour's kind: a
    shape of the neighbour's kind a cell away is not that neighbour recoloured (40 scenes: no add or remove)."""
    edits = [e for seed in range(2000, 2040) for e in _critique_of_a_drop(seed, "object")]
    assert edits and not [e for e in edits if e.startswith(("add ", "remove "))]


def test_a_shape_asked_in_its_backgrounds_colour_is_drawn_apart_from_it() -> None:
    """Like a real model given "a green circle on a green background", the sandbox keeps the shape visible."""
    from imagerepainter.sandbox.renderer import GROUND_CONTRAST, off_the_ground

    prompt = "a large green circle at center, a small red square at top left, on a green background"
    image = SandboxT2I(noise=0).render(GenerationRequest(prompt=prompt, seed=1, height=128, width=128))
    blobs = perceive(image).blobs
    assert len(blobs) == 2 and {b.kind for b in blobs} == {"circle", "square"}
    scene = parse_prompt(prompt)
    kept = off_the_ground(scene)
    assert kept.shapes[1] == scene.shapes[1]  # the red square stood out already: drawn as asked
    assert GROUND_CONTRAST <= delta_e(kept.shapes[0].color, scene.background) < 45  # the least shade that does


def test_drop_size_moves_every_shape_two_words_without_new_overlaps() -> None:
    from imagerepainter.sandbox.describe import SMALLEST_NOTICED, noticed
    from imagerepainter.sandbox.drops import drop
    from imagerepainter.sandbox.scene import SIZE_WORDS

    words = [w for w in SIZE_WORDS if SIZE_WORDS[w] >= SMALLEST_NOTICED]

    def gap(a: Shape, b: Shape) -> float:
        return math.dist((a.x, a.y), (b.x, b.y)) - (a.size + b.size) / 2

    checked = 0
    for seed in range(2000, 2040):
        prompt = _first_prompt(seed)
        resized = drop(prompt, "size").shapes
        for before, after in zip(prompt.shapes, resized, strict=True):
            i, j = (words.index(next(w for w in words if SIZE_WORDS[w] == s.size)) for s in (before, after))
            assert abs(i - j) in (1, 2), (seed, before, after)  # two words, one where two would overlap
        pairs = zip(itertools.combinations(prompt.shapes, 2), itertools.combinations(resized, 2), strict=True)
        for (a, b), (c, d) in pairs:
            assert gap(a, b) < 0 or gap(c, d) >= 0, (seed, c, d)  # shapes apart stay apart
        request = GenerationRequest(prompt=prompt.to_prompt(), seed=1)
        exact, dropped = (perceive(SandboxT2I(drop=kind).render(request)) for kind in ("", "size"))
        if all(gap(a, b) >= 0 for a, b in itertools.combinations(prompt.shapes, 2)):  # shapes told apart stay so
            assert len(noticed(dropped)) == len(noticed(exact)), seed
            checked += 1
    assert checked >= 30
