"""run.json is read and written through one model, RunRecord, whose status is a closed set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagerepainter.errors import ConfigurationError
from imagerepainter.runs.folder import BackendSpecs, RunFolder, RunRecord
from imagerepainter.sandbox import random_scene, render_scene


def test_run_json_round_trips_through_run_record_and_refuses_an_unknown_status(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    specs = BackendSpecs(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    folder.run(specs, render_scene(random_scene(2)), overrides={"max_rounds": 1}, extra={"demo": {"seed": 7}})
    stored = json.loads(folder.record_path.read_text())
    record = RunRecord.model_validate(stored)
    assert record.status == "finished" and record.result is not None and stored["demo"] == {"seed": 7}
    assert folder.read_record() == stored == record.to_json()  # nothing lost or added either way
    folder.record_path.write_text(json.dumps({**stored, "status": "done"}))
    with pytest.raises(ConfigurationError, match=r"run\.json is not a run's \(status: Input should be 'running'"):
        folder.read_record()
