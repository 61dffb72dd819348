"""Benchmark datasets: folders, manifests, and EvalRef-100 read locally or fetched over HTTP and verified."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from imagerepainter.bench.datasets import file_sha256, load_dataset
from imagerepainter.bench.evalref import NAMED_SETS, load_named
from imagerepainter.errors import ConfigurationError


def _png(path: Path, color: str = "red", size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)
    return path


def test_folder_is_sorted_with_categories_from_subfolders(tmp_path):
    _png(tmp_path / "b.png")
    _png(tmp_path / "dogs" / "z.png", "blue")
    _png(tmp_path / "cats" / "a.png", "green")
    (tmp_path / "notes.txt").write_text("not an image")
    data = load_dataset(tmp_path)
    assert [r.id for r in data] == ["b.png", "cats/a.png", "dogs/z.png"]
    assert [r.category for r in data] == [None, "cats", "dogs"]
    assert data.references[2].sha256 == file_sha256(tmp_path / "dogs" / "z.png")
    assert data.categories == ["cats", "dogs"]
    assert [r.id for r in data.select(categories=["dogs"])] == ["dogs/z.png"]
    with pytest.raises(ConfigurationError, match="categories are: cats, dogs"):
        data.select(categories=["birds"])


def test_manifest_keeps_fields_and_reports_each_bad_line_per_case(tmp_path):
    good = _png(tmp_path / "set" / "good.png")
    changed = _png(tmp_path / "set" / "changed.png", "blue")
    _png(tmp_path / "outside.png")
    lines = [
        {"path": "good.png", "id": "g", "category": "c1", "style": "flat", "prompt": "red", "sha256": file_sha256(good),
         "author": "x"},
        {"path": "../outside.png"},
        {"path": str(tmp_path / "outside.png")},
        {"path": "changed.png", "sha256": "0" * 64},
        {"path": "missing.png"},
    ]  # fmt: skip
    manifest = tmp_path / "set" / "refs.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    data = load_dataset(manifest)
    by_id = {r.id: r for r in data}
    assert len(data) == 5
    g = by_id["g"]
    assert (g.category, g.style, g.prompt, g.metadata, g.problem) == ("c1", "flat", "red", {"author": "x"}, None)
    assert "leaves the manifest's folder" in by_id["../outside.png"].problem
    assert "leaves the manifest's folder" in by_id[str(tmp_path / "outside.png")].problem
    assert "the manifest says 000000000000" in by_id["changed.png"].problem
    assert by_id["changed.png"].sha256 == "0" * 64 != file_sha256(changed)
    assert "missing" in by_id["missing.png"].problem


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"path": "a.png"}\n{"path": "a.png"}\n', "appears twice"),
        ('{"path": "a.png"\n', "not valid JSON"),
        ('{"id": "x"}\n', 'needs a "path"'),
    ],
)
def test_a_malformed_manifest_is_refused_with_its_line(tmp_path, text, error):
    (tmp_path / "m.jsonl").write_text(text)
    with pytest.raises(ConfigurationError, match=error):
        load_dataset(tmp_path / "m.jsonl")


def test_unknown_source_and_empty_folder_are_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="named set"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(ConfigurationError, match="holds no image"):
        load_dataset(tmp_path)


def test_evalref_local_copy_matches_the_shipped_hashes(evalref_dir):
    data = load_dataset(evalref_dir)
    assert data.name == "evalref-100" and data.licence == "CC-BY-NC 4.0"
    assert len(data) == 100 and all(r.problem is None for r in data)
    assert data.categories == ["complex", "object", "portrait", "scene"]
    assert sum(r.category == "portrait" for r in data) == 25


class _Server:
    """Serves a folder on 127.0.0.1 and counts the requests."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                super().do_GET()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_evalref_download_verifies_every_file_and_fetches_once(tmp_path, evalref_dir):
    entries = NAMED_SETS["evalref-100"].entries()
    served = tmp_path / "www" / "files"
    served.mkdir(parents=True)
    good = [e["path"] for e in entries[:3]]
    for name in good:
        (served / name).write_bytes((evalref_dir / name).read_bytes())
    corrupt = entries[3]["path"]
    data = bytearray((evalref_dir / corrupt).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    (served / corrupt).write_bytes(bytes(data))
    server = _Server(tmp_path / "www")
    try:
        cache = tmp_path / "cache"
        first = load_named("evalref-100", cache_dir=cache, base_url=server.url)
        assert len(server.requests) == 100  # every file asked for once
        by_id = {r.id: r for r in first}
        assert [by_id[name].problem for name in good] == [None, None, None]
        assert "sha256 differs" in by_id[corrupt].problem
        assert not (cache / "evalref-100" / corrupt).exists()  # a refused file never reaches the cache
        assert "could not download" in by_id[entries[4]["path"]].problem
        for name in good:
            cached = (cache / "evalref-100" / name).read_bytes()
            assert hashlib.sha256(cached).hexdigest() == by_id[name].sha256
        assert "CC-BY-NC 4.0" in (cache / "evalref-100" / "NOTICE.txt").read_text()
        assert first.licence == "CC-BY-NC 4.0"

        load_named("evalref-100", cache_dir=cache, base_url=server.url)
        asked_again = server.requests[100:]
        assert len(asked_again) == 97 and not any(name in path for path in asked_again for name in good)
    finally:
        server.close()
