"""Reading references: typed errors for bad input, normalisation of odd but valid images."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagerepainter.errors import ImageTooLargeError, InvalidImageError
from imagerepainter.images import (
    DirectoryImageStore,
    MemoryImageStore,
    image_sha256,
    load_image,
    shrink,
    to_data_url,
)


def _png(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_missing_empty_and_non_image(tmp_path):
    with pytest.raises(InvalidImageError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "notes.txt").write_text("hello, not an image")
    with pytest.raises(InvalidImageError, match="not an image"):
        load_image(tmp_path / "notes.txt")
    with pytest.raises(InvalidImageError, match="folder"):
        load_image(tmp_path)
    with pytest.raises(InvalidImageError, match="not int"):
        load_image(42)  # type: ignore[arg-type]


def test_truncated_file_is_rejected(evalref_dir):
    data = (evalref_dir / "object_1.png").read_bytes()
    with pytest.raises(InvalidImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_from_the_header():
    big = _png(Image.new("L", (3000, 3000)))  # compresses to a few kB
    with pytest.raises(ImageTooLargeError, match="9,000,000 pixels"):
        load_image(big, max_pixels=1_000_000)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("RGBA", (8, 6), (255, 0, 0, 0)),  # fully transparent -> white
        lambda: Image.new("P", (8, 6), 3),
        lambda: Image.new("L", (8, 6), 128),
        lambda: Image.new("CMYK", (8, 6), (0, 255, 0, 0)),
        lambda: Image.fromarray(np.full((6, 8), 40000, dtype=np.uint16)),
        lambda: Image.new("1", (8, 6), 1),
    ],
)
def test_odd_modes_are_normalised_to_rgb(make):
    image = make()
    out = load_image(_png(image) if image.mode != "CMYK" else _png(image, "JPEG"))
    assert out.mode == "RGB" and out.size == (8, 6)


@pytest.mark.parametrize(
    ("make", "encode", "gray"),
    [
        (lambda: Image.fromarray(np.full((6, 8), 0.5, dtype=np.float32), mode="F"), "TIFF", 128),  # 0-1 floats
        (lambda: Image.fromarray(np.full((6, 8), 200.0, dtype=np.float32), mode="F"), "TIFF", 200),  # 0-255 floats
        (lambda: Image.fromarray(np.full((6, 8), 32896, dtype=np.uint16)), "PNG", 128),  # 16-bit: v / 257
        (lambda: Image.fromarray(np.full((6, 8), 1000, dtype=np.uint16)), "PNG", 4),  # dark stays dark
    ],
)
def test_high_depth_grayscale_keeps_its_brightness(make, encode, gray):
    image = make()
    image.putpixel((0, 0), type(image.getpixel((1, 1)))(image.getpixel((1, 1)) // 2))  # not flat: no stretching
    out = np.asarray(load_image(_png(image, encode)))
    assert out.shape == (6, 8, 3) and (out[1:, 1:] == gray).all()


def test_a_url_is_refused_with_the_fix():
    with pytest.raises(InvalidImageError, match="is a URL; references are not downloaded"):
        load_image("https://example.com/x.png")


def test_transparent_pixels_become_white():
    out = load_image(Image.new("RGBA", (4, 4), (255, 0, 0, 0)))
    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_exif_rotation_is_applied():
    image = Image.new("RGB", (8, 4), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    out = load_image(_png(image, "JPEG", exif=exif))
    assert out.size == (4, 8)


def test_real_photo_loads(evalref_dir):
    out = load_image(evalref_dir / "portrait_1.png")
    assert out.mode == "RGB" and out.size == (512, 512)


@pytest.mark.parametrize("store_kind", ["memory", "directory"])
def test_stores_round_trip_and_are_content_addressed(tmp_path, store_kind):
    store = MemoryImageStore() if store_kind == "memory" else DirectoryImageStore(tmp_path)
    a = Image.new("RGB", (5, 5), "blue")
    ref1, ref2 = store.put(a), store.put(a.copy())
    assert ref1 == ref2
    assert np.array_equal(np.asarray(store.get(ref1)), np.asarray(a))
    if store_kind == "directory":
        assert np.array_equal(np.asarray(DirectoryImageStore(tmp_path).get(ref1)), np.asarray(a))  # raw or PNG
        store.compact()
        assert [p.name for p in tmp_path.iterdir()] == [f"{ref1['sha256']}.png"]  # no raw file, no temporary
        assert np.array_equal(np.asarray(DirectoryImageStore(tmp_path).get(ref1)), np.asarray(a))


def test_devices_and_named_pipes_are_refused_without_reading(tmp_path):
    # Reading /dev/zero never ends and opening a FIFO blocks until a writer appears.
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    for source in (fifo, Path("/dev/zero")):
        with pytest.raises(InvalidImageError, match="not a regular file"):
            load_image(source)


def test_identity_is_the_pixels_not_an_encoding(tmp_path):
    """The same picture has one ref however it was encoded; a file can be re-encoded without breaking refs."""
    photo = Image.new("RGB", (64, 48))
    photo.putdata([(x * 4 % 256, y * 5 % 256, (x * y) % 256) for y in range(48) for x in range(64)])
    fast, small = io.BytesIO(), io.BytesIO()
    photo.save(fast, format="PNG", compress_level=0)
    photo.save(small, format="PNG", compress_level=9)
    assert fast.getvalue() != small.getvalue()
    store = DirectoryImageStore(tmp_path)
    ref = store.put(load_image(fast.getvalue()))
    assert store.put(load_image(small.getvalue())) == ref
    assert ref["sha256"] == image_sha256(photo) != image_sha256(photo.convert("L"))
    store.compact()
    store.path(ref).write_bytes(small.getvalue())  # re-encoded on disk: the ref still reads the same pixels
    assert np.array_equal(np.asarray(DirectoryImageStore(tmp_path).get(ref)), np.asarray(photo))


@pytest.mark.parametrize("store_kind", ["memory", "directory"])
def test_images_from_a_store_can_be_modified_without_corrupting_it(tmp_path, store_kind):
    store = MemoryImageStore() if store_kind == "memory" else DirectoryImageStore(tmp_path)
    ref = store.put(Image.new("RGB", (40, 20), "green"))
    mine = store.get(ref)
    mine.thumbnail((4, 4))  # in place, as notebooks do
    assert store.get(ref).size == (40, 20) and store.get(ref).getpixel((0, 0)) == (0, 128, 0)


def test_a_missing_image_is_a_typed_error(tmp_path):
    from imagerepainter.errors import ImageNotFoundError

    ref = MemoryImageStore().put(Image.new("RGB", (2, 2)))
    for store in (MemoryImageStore(), DirectoryImageStore(tmp_path)):
        with pytest.raises(ImageNotFoundError, match=ref["sha256"][:12]):
            store.get(ref)


def test_a_request_image_is_encoded_once_per_image_and_size():
    image = Image.new("RGB", (900, 300), "red")
    url = to_data_url(image, max_side=300)
    assert to_data_url(image, max_side=300) == url
    assert load_image(base64.b64decode(url.split(",", 1)[1])).size == (300, 100)
    small = shrink(image, 300)
    assert to_data_url(small) is to_data_url(small)  # the same object: cached, not re-encoded
    assert shrink(small, 300) is small


def test_a_raw_file_left_by_a_killed_process_serves_its_ref_and_is_compacted(tmp_path):
    """put() returns once raw pixels are on disk; a process killed before the PNG exists loses nothing."""
    image = Image.new("RGB", (30, 20))
    image.putdata([(x * 8, y * 12, 99) for y in range(20) for x in range(30)])
    ref = image_sha256(image)
    image.save(tmp_path / f"{ref}.bmp")  # what put() writes first
    later = DirectoryImageStore(tmp_path)
    ref = {"sha256": ref, "width": 30, "height": 20}
    assert np.array_equal(np.asarray(later.get(ref)), np.asarray(image))
    later.compact()
    assert [p.name for p in tmp_path.iterdir()] == [f"{ref['sha256']}.png"]
    assert np.array_equal(np.asarray(DirectoryImageStore(tmp_path).get(ref)), np.asarray(image))
