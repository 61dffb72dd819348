"""Give the loop to a LangChain agent as a tool, offline: ``create_agent`` with ``rp.as_tool()``.

The agent's model is the real ``ChatOpenAI`` client talking to an OpenAI-compatible server on
127.0.0.1 (``imagerepainter.testing``) whose scripted "model" asks for the tool once and then
answers with what the tool said; the loop behind the tool is the sandbox world. Point
``base_url`` at any tool-calling model (or pass ``"openai:gpt-4o"``) and the code stays the same.

    python examples/agent_tool.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from langchain.agents import create_agent
from langchain_openai import ChatOpenAI

from imagerepainter import Repainter
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.testing.openai_server import ChatReply, ChatRequest, OpenAICompatibleServer


def scripted_model(request: ChatRequest) -> object:
    """Call the repaint tool on the user's picture; once it answered, repeat its answer."""
    answers = [m for m in request.messages if m.get("role") == "tool"]
    if not answers:
        asked = next(m["content"] for m in request.messages if m.get("role") == "user")
        picture = asked.rsplit(" ", 1)[-1]  # the path at the end of the user's message
        return ChatReply(payload={"image": picture, "max_rounds": 3}, tool_name="repaint_image")
    return f"Done. The tool said: {answers[-1]['content']}"


with tempfile.TemporaryDirectory() as work:
    references = Path(work, "references")
    references.mkdir()
    picture = references / "picture.png"
    render_scene(random_scene(4), seed=4).save(picture)

    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    tool = rp.as_tool(allowed_dirs=[references], save_dir=Path(work, "repaints"))
    with OpenAICompatibleServer(scripted_model) as server:
        model = ChatOpenAI(model="agent", base_url=server.base_url, api_key="unused", max_retries=0)
        agent = create_agent(model, tools=[tool])
        state = agent.invoke({"messages": [{"role": "user", "content": f"Regenerate my picture {picture}"}]})

    tool_message = next(m for m in state["messages"] if m.type == "tool")
    result = tool_message.artifact  # the whole RepaintResult, next to the short text the model read
    print(state["messages"][-1].content)
    print(f"artifact: {len(result.rounds)} rounds, best score {result.best.score:.3f}, stop: {result.stop_reason}")
