"""A brain backed by any OpenAI-compatible chat completions endpoint.

Off by default (the scripted brain needs nothing); select it with
``REFINERY_BRAIN=openai`` and point ``REFINERY_LLM_URL`` at e.g. a local
llama.cpp or vLLM server (``http://127.0.0.1:8000/v1``), with
``REFINERY_LLM_MODEL`` and optionally ``REFINERY_LLM_API_KEY``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from server.agents.brain import AgentOutput, AgentRequest


@dataclass
class OpenAIChatBrain:
    base_url: str
    model: str
    api_key: str = ""
    timeout_s: float = 60.0

    name = "openai"

    @classmethod
    def from_env(cls) -> "OpenAIChatBrain":
        url = os.environ.get("REFINERY_LLM_URL")
        if not url:
            raise ValueError(
                "the 'openai' brain needs REFINERY_LLM_URL (an OpenAI-compatible base URL such as "
                "http://127.0.0.1:8000/v1); unset REFINERY_BRAIN to use the scripted brain"
            )
        return cls(url.rstrip("/"), os.environ.get("REFINERY_LLM_MODEL", "default"), os.environ.get("REFINERY_LLM_API_KEY", ""))

    def _chat(self, system: str, user: str) -> str:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": self.model, "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}
        import httpx  # here, not at the top: every session imports this module, few use it (~40 ms)

        resp = httpx.post(f"{self.base_url}/chat/completions", json=body, headers=headers, timeout=self.timeout_s)
        resp.raise_for_status()
        return str(resp.json()["choices"][0]["message"]["content"]).strip()

    def respond(self, request: AgentRequest) -> AgentOutput:
        history = "\n".join(f"{t.role}: {t.text}" for t in request.history)
        earlier = "\n".join(f"{name}: {text}" for name, text in request.earlier)
        if request.task == "flow_summary":
            system = f"You are {request.agent_name}. Goal: {request.goal}. Summarise your team's advice in two spoken sentences."
            text = self._chat(system, f"Question: {request.query}\n\nTeam output:\n{earlier}")
            return AgentOutput(text, text)
        system = (
            f"You are {request.agent_name}: {request.description} Goal: {request.goal}. "
            f"Answer in a {request.config.get('output_style', 'conversational')} style, at most 5 sentences."
        )
        user = f"Conversation so far:\n{history}\n\nEarlier agents this turn:\n{earlier}\n\nQuestion: {request.query}"
        text = self._chat(system, user)
        spoken = self._chat("Summarise in one spoken sentence.", text) if request.summarize else text
        return AgentOutput(text, spoken)
