"""Drive the real ChatOpenAI client against an OpenAI-compatible server on 127.0.0.1.

Here the server is the sandbox MLLM; point base_url at vLLM or Ollama serving a vision model
and the code stays the same.

    python examples/chatopenai_local_server.py
"""

from __future__ import annotations

from langchain_openai import ChatOpenAI

from imagerepainter import Repainter
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.sandbox.server import sandbox_server

with sandbox_server() as server:
    chat = ChatOpenAI(model="sandbox", base_url=server.base_url, api_key="EMPTY", temperature=0)
    rp = Repainter(mllm=chat, t2i="sandbox", scorer="sandbox", max_rounds=3)
    result = rp.run(render_scene(random_scene(4), seed=4))
    print(result.summary())
    print(f"{len(server.chat_requests)} chat requests; {result.usage['input_tokens']} input tokens")
