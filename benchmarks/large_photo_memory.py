"""Peak memory of a one-round sandbox run on a large photograph against ordinary ones (issue 17, item 8).

    python benchmarks/large_photo_memory.py [--small] [--json memory.json]

Makes photograph-like JPEGs (gradients and noise, so decoding is real work): a 36-megapixel
one (7360x4912, a phone's full size; below the 40 MP guard) and two ordinary ones (1536x1024,
640x480). Each runs one sandbox round in a fresh interpreter, twice: from Python
(``Repainter.run(path)``) and through a run folder as the command line does (``RunFolder.run``:
the reference is read before the model is built, then reduced again). It reports each child's
peak RSS (``VmHWM``: Linux), the ratio of the large photograph's peak to the ordinary ones', and
whether the large one stays within the 400 MB target. ``--small`` uses a 12 MP photograph
instead, for a quick check.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from perf_kit import child_json

TARGET_MB = 400

_CHILD = r"""
import json, sys
from pathlib import Path
how, photo, folder = sys.argv[1], sys.argv[2], sys.argv[3]
if how == "python":
    from imagerepainter import Repainter
    result = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=1).run(photo)
else:
    from imagerepainter.runs.folder import BackendSpecs, RunFolder
    specs = BackendSpecs("sandbox", "sandbox", "sandbox")
    result = RunFolder(Path(folder)).run(specs, photo, overrides={"max_rounds": 1})
# VmHWM: this interpreter's own peak (ru_maxrss would keep the parent's peak across fork and exec)
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({"peak_mb": round(peak, 1), "reference": [result.reference["width"], result.reference["height"]]}))
"""


def make_photo(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """A photograph-like JPEG of ``size``: colour gradients, a wave and noise, quality 90."""
    import numpy as np
    from PIL import Image

    width, height = size
    rng = np.random.default_rng(seed)
    rows = []
    for top in range(0, height, 512):  # in strips: making the picture must not weigh more than reading it
        y, x = np.mgrid[top : min(height, top + 512), 0:width].astype(np.float32)
        base = np.stack([255 * x / width, 128 + 127 * np.sin(x / 40 + y / 70), 255 * (1 - y / height)], axis=-1)
        rows.append(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
    Image.fromarray(np.concatenate(rows)).save(path, quality=90)
    return path


def measure(how: str, photo: Path, folder: Path) -> dict[str, Any]:
    """One child run's peak RSS and reference size."""
    return child_json(_CHILD, how, str(photo), str(folder))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="a 12 MP photograph instead of 36 MP")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    large = (4000, 3000) if args.small else (7360, 4912)
    report: dict[str, Any] = {"target_mb": TARGET_MB, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        photos = {
            "large": make_photo(Path(tmp) / "large.jpg", large),
            "ordinary": make_photo(Path(tmp) / "ordinary.jpg", (1536, 1024), seed=1),
            "small": make_photo(Path(tmp) / "small.jpg", (640, 480), seed=2),
        }
        for how in ("python", "run_folder"):
            for name, photo in photos.items():
                row = {"how": how, "photo": name, **measure(how, photo, Path(tmp) / f"{how}-{name}")}
                row["megapixels"] = round(large[0] * large[1] / 1e6, 1) if name == "large" else None
                report["runs"].append(row)
                print(f"{how:10} {name:8} peak {row['peak_mb']:7.1f} MB  reference {row['reference']}", flush=True)
    for how in ("python", "run_folder"):
        peaks = {r["photo"]: r["peak_mb"] for r in report["runs"] if r["how"] == how}
        ratio = peaks["large"] / peaks["ordinary"]
        report[how] = {"large_over_ordinary": round(ratio, 2), "within_target": peaks["large"] <= TARGET_MB}
        print(f"{how:10} large/ordinary {ratio:.2f}; large within {TARGET_MB} MB: {peaks['large'] <= TARGET_MB}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
