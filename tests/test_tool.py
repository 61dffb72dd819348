"""The loop as a tool: an agent calls it, reads a short answer, and survives bad input."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from langchain_openai import ChatOpenAI

from imagerepainter import Repainter, RepaintResult
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.testing.openai_server import ChatReply, ChatRequest, OpenAICompatibleServer

pytest.importorskip("langchain.agents")


class AgentScript:
    """A model that calls the repaint tool with ``image``, then answers with the tool's reply."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.seen: list[ChatRequest] = []

    def __call__(self, request: ChatRequest) -> object:
        self.seen.append(request)
        tool_results = [m for m in request.messages if m.get("role") == "tool"]
        if not tool_results:
            return ChatReply(payload={"image": self.image, "max_rounds": 2}, tool_name="repaint_image")
        return f"The tool said: {tool_results[-1]['content']}"


def _agent(server: OpenAICompatibleServer, tool: object) -> object:
    from langchain.agents import create_agent

    model = ChatOpenAI(base_url=server.base_url, api_key="sk-test-agent", model="gpt-4o-mini", max_retries=0)
    return create_agent(model, tools=[tool])


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "reference.png"
    render_scene(random_scene(7), seed=7).save(path)
    return path


def test_an_agent_calls_the_tool_and_gets_the_summary_and_the_result(tmp_path):
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    script = AgentScript(str(_photo(tmp_path)))
    with OpenAICompatibleServer(script) as server:
        state = _agent(server, rp.as_tool(save_dir=tmp_path / "saved")).invoke(
            {"messages": [{"role": "user", "content": "Regenerate my picture."}]}
        )
    tool_message = next(m for m in state["messages"] if m.type == "tool")
    result = tool_message.artifact
    assert isinstance(result, RepaintResult) and result.finished and len(result.rounds) <= 2
    assert result.best.prompt in tool_message.content and "Best score" in tool_message.content
    assert "saved in" in tool_message.content and RepaintResult.load(tmp_path / "saved" / result.thread_id).finished
    assert state["messages"][-1].content.startswith("The tool said: Regenerated in")
    assert script.seen[0].body["tools"][0]["function"]["name"] == "repaint_image"


@pytest.mark.parametrize("image", ["/no/such/picture.png", "data:image/png;base64,not-base64!!"])
def test_bad_input_comes_back_to_the_model_as_an_error_not_an_exception(tmp_path, image):
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    with OpenAICompatibleServer(AgentScript(image)) as server:
        state = _agent(server, rp.as_tool()).invoke({"messages": [{"role": "user", "content": "Regenerate it."}]})
    tool_message = next(m for m in state["messages"] if m.type == "tool")
    assert tool_message.content.startswith("Cannot repaint: ") and tool_message.artifact is None
    assert state["messages"][-1].content.startswith("The tool said: Cannot repaint")


def test_a_data_url_works_and_paths_outside_the_allowed_folders_are_refused(tmp_path):
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=1)
    buf = io.BytesIO()
    render_scene(random_scene(2), seed=2).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    tool = rp.as_tool(allowed_dirs=[tmp_path / "inbox"])
    call = {"type": "tool_call", "id": "1", "name": tool.name}
    assert tool.invoke({**call, "args": {"image": url}}).artifact.finished
    refused = tool.invoke({**call, "args": {"image": str(_photo(tmp_path))}})
    assert "outside the folders this tool may read" in refused.content and refused.artifact is None


def test_urls_are_downloaded_only_when_the_host_allows_it(image_server):
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=1)
    call = {"type": "tool_call", "id": "1", "name": "repaint_image", "args": {"image": f"{image_server}/ref.png"}}
    refused = rp.as_tool().invoke(call)
    assert "does not download images from URLs" in refused.content and refused.artifact is None
    result = rp.as_tool(allow_urls=True).invoke(call).artifact
    assert result.finished and result.reference_image.size == (256, 256)
