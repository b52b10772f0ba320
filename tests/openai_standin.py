"""A stand-in OpenAI-compatible server (its chat and completions protocols, echo and logprobs
as vLLM and OpenAI answer them), on 127.0.0.1, for the OpenAI-compatible backend's tests.

It "simulates" a neuron that fires on tokens holding "king": at a slot after a tab its top
logprobs give "9" 0.8 after such a token, else "0" 0.9 (with "unknown" 0.1 either way)."""

from __future__ import annotations

import math
import re
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Request

TOKEN = re.compile(r"\w+|\s|[^\w\s]")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def standin_app(state: dict) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict:
        body = await request.json()
        state["chat"].append(body)
        time.sleep(state.get("delay_s", 0))
        last = body["messages"][-1]["content"]
        if "Tokens with Activations" in last:  # the logprob-free simulator's prompt
            lines = last.split("Tokens without Activations:\n")[1].split("\n\n")[0]
            tokens = [line.split("\t")[0] for line in lines.split("\n") if line]
            content = "".join(f"{t}\t{5 if 'king' in t else 0}༗\n" for t in tokens)
            choices = [{"index": 0, "message": {"role": "assistant", "content": content}}]
        else:
            n = 1 if state.get("ignore_n") else body.get("n", 1)
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": f" kings and queens {i}."},
                    "finish_reason": "stop",
                }
                for i in range(n)
            ]
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{**c, "finish_reason": "stop"} for c in choices]}  # fmt: skip

    @app.post("/v1/completions")
    async def completions(request: Request) -> dict:
        body = await request.json()
        state["completions"].append(body)
        time.sleep(state.get("delay_s", 0))
        prompt = body["prompt"]
        tokens = TOKEN.findall(prompt)
        offsets, at = [], 0
        for token in tokens:
            offsets.append(at)
            at += len(token)
        top = []
        for i, token in enumerate(tokens):
            if i >= 2 and tokens[i - 1] == "\t":
                fires = "king" in tokens[i - 2]
                top.append(
                    {"9": math.log(0.8), "unknown": math.log(0.1), "0": math.log(0.1)}
                    if fires
                    else {"0": math.log(0.9), "unknown": math.log(0.1)}
                )
            else:
                top.append({token: -0.1})
        logprobs = {
            "tokens": tokens,
            "text_offset": offsets,
            "token_logprobs": [None] + [-0.1] * (len(tokens) - 1),
            "top_logprobs": [None, *top[1:]],
        }
        choice = {"index": 0, "text": prompt, "logprobs": logprobs, "finish_reason": "length"}
        return {"id": "y", "object": "text_completion", "created": 0, "model": body["model"],
                "choices": [choice]}  # fmt: skip

    return app


class StandinServer:
    def __init__(self) -> None:
        self.state: dict = {"chat": [], "completions": []}
        self.port = _free_port()
        config = uvicorn.Config(
            standin_app(self.state), host="127.0.0.1", port=self.port, log_level="error"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> StandinServer:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
