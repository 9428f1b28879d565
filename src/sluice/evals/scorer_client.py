"""What model-backed scorers call: a gateway (its base URL and bearer key) over the run's shared aiohttp session.

Every call carries `x-sluice-cache: bypass` (a judge is asked, never answered from the response cache) and none
of the target's own headers (a judge is not pinned to the candidate side of a deployment). A failed call is a
`ScorerCallError` whose message says why; the scorer turns it into a scorer error, never a score.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

MAX_ERROR_CHARS = 300


class ScorerCallError(Exception):
    """A scorer's call to the gateway failed: `HTTP 502: message`, `connection: ...`, `not JSON: ...`."""


class ScorerClient:
    """The gateway a run's model-backed scorers call, with the reference embeddings of the run cached."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, *, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.headers = {"x-sluice-cache": "bypass", "content-type": "application/json",
                        **({"authorization": f"Bearer {api_key}"} if api_key else {})}
        # (model, text) -> its embedding, shared by concurrent cases so each reference is embedded once a run
        self._embeddings: dict[tuple[str, str], asyncio.Task[list[float]]] = {}

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer of a POST to `path` (`/v1/chat/completions`); ScorerCallError for anything else."""
        try:
            async with self.session.post(self.base_url + path, data=orjson.dumps(body),
                                         headers=self.headers) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise ScorerCallError(f"connection: {error or type(error).__name__}"[:MAX_ERROR_CHARS]) from None
        if status != 200:
            raise ScorerCallError(f"HTTP {status}: {openai_error_message(raw)}")
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            raise ScorerCallError(f"not JSON: {raw[:200].decode(errors='replace')}")
        return payload

    async def chat(self, body: dict[str, Any]) -> str:
        """The content of a non-streamed chat completion's first choice."""
        payload = await self.post("/v1/chat/completions", {**body, "stream": False})
        try:
            return str(payload["choices"][0]["message"].get("content") or "")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ScorerCallError(f"not a chat completion: {orjson.dumps(payload)[:200].decode()}") from None

    async def embedding(self, model: str, text: str, *, cache: bool = False) -> list[float]:
        """The text's embedding by `model`; with `cache`, asked once a run (a reference shared by many cases)."""
        if not cache:
            return await self._embed(model, text)
        key = (model, text)
        task = self._embeddings.get(key)
        if task is None:
            task = self._embeddings[key] = asyncio.ensure_future(self._embed(model, text))
        try:
            return await asyncio.shield(task)  # one case's cancellation must not cancel the others' wait
        except ScorerCallError:
            self._embeddings.pop(key, None)  # a later case asks again
            raise

    async def _embed(self, model: str, text: str) -> list[float]:
        payload = await self.post("/v1/embeddings", {"model": model, "input": [text], "encoding_format": "float"})
        try:
            vector = payload["data"][0]["embedding"]
        except (KeyError, IndexError, TypeError):
            raise ScorerCallError(f"not an embeddings answer: {orjson.dumps(payload)[:200].decode()}") from None
        if not isinstance(vector, list) or not vector or not all(isinstance(x, int | float) for x in vector):
            raise ScorerCallError("the embedding is not a list of numbers")
        return [float(x) for x in vector]


def openai_error_message(raw: bytes) -> str:
    """The OpenAI-style `error.message` of an error body, else the body's start."""
    try:
        message: Any = orjson.loads(raw)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = raw.decode(errors="replace")
    return str(message)[:MAX_ERROR_CHARS]


__all__ = ["MAX_ERROR_CHARS", "ScorerCallError", "ScorerClient", "openai_error_message"]
