"""Test doubles and builders, public so users test their own code the way we test ours.

* :mod:`~imagerepainter.testing.fakes` — scripted in-process fakes (:class:`FakeMLLM`,
  :class:`FakeT2I`, :class:`ScriptedScorer`);
* :mod:`~imagerepainter.testing.openai_server` — an OpenAI-compatible HTTP server on
  127.0.0.1 with scriptable answers, request recording and fault injection;
* :mod:`~imagerepainter.testing.openai_faults` — :class:`ContentFaults`, a flaky API whose faults
  depend on each request's content, so a faulty run can be replayed and compared with a
  fault-free one;
* :mod:`~imagerepainter.testing.raters` — :class:`SimulatedRater`, 2AFC answers from a known truth
  with a set error rate, and distortion triplets whose truth is known, to test the agreement report;
* :mod:`~imagerepainter.testing.tiny_models` — tiny random-weight Stable Diffusion, CLIP and
  DINOv2 models saved to a folder, to test the real ``from_pretrained`` paths offline.
"""

from .fakes import FakeMLLM, FakeT2I, MLLMCall, ScriptedScorer, fake_answer

__all__ = ["FakeMLLM", "FakeT2I", "MLLMCall", "ScriptedScorer", "fake_answer"]
