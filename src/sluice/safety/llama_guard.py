"""The Llama Guard 3 layer: the conversation in Meta's prompt format (llama_guard_format.py), sent to a model of
the gateway's own (`safety.guards.<name>.model`) through its chain — routed, retried, timed, priced and written to
the request log like any request, with `guard.parent_request_id` linking it to the request it guards.

With logprobs in the answer the score is P("unsafe") at the first token and `threshold` decides; without, the
model's first line does. The verdict's category is the first violated category's name (`violent-crimes`), its
rule the codes (`S1,S10`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from sluice.backends import ChatCompletionRequest, Completion, CompletionRequest
from sluice.config import LlamaGuardConfig
from sluice.errors import SluiceError
from sluice.safety.guards import Direction, GuardBase, GuardContext, GuardFailed, Verdict
from sluice.safety.llama_guard_format import CustomCategory, GuardAnswerError, build_prompt, parse, unsafe_probability

# (model, body of a /v1/completions request, the guarded request's context) -> the answer; built by the
# composition root over the gateway's own chains.
ModelCaller = Callable[[str, dict[str, Any], Any], Awaitable[Completion]]
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


class LlamaGuard(GuardBase):
    layer = "llama_guard"

    def __init__(self, name: str, config: LlamaGuardConfig) -> None:
        super().__init__(name, config)
        self.model = config.model
        self.categories = config.categories
        self.custom = [CustomCategory(category.name, category.description) for category in config.custom_categories]
        self.threshold = config.threshold
        self.max_chars = config.max_chars
        self._called(config)
        self.caller: ModelCaller | None = None  # bound by the composition root once the gateway exists

    def bind(self, caller: ModelCaller) -> None:
        self.caller = caller

    async def judge(self, text: str, direction: Direction, context: GuardContext) -> Verdict | None:
        if self.caller is None:
            raise GuardFailed("the guard is not connected to the gateway")
        try:
            prompt = build_prompt(self._turns(text, direction, context), direction=direction,
                                  categories=self.categories, custom=self.custom)
        except ValueError as exc:
            raise GuardFailed(f"cannot build the Llama Guard prompt: {exc}") from None
        body = {"model": self.model, "prompt": prompt.text_without_bos, "max_tokens": 24, "temperature": 0,
                "logprobs": 5, "stream": False}
        try:
            answer = await self.caller(self.model, body, context.request)
        except SluiceError as exc:
            raise GuardFailed(f"its model `{self.model}` failed: {exc.message}"[:300]) from None
        choices = answer.payload.get("choices") or [{}]
        try:
            assessment = parse(answer.text, prompt.categories)
        except GuardAnswerError as exc:
            raise GuardFailed(str(exc)) from None
        score = unsafe_probability(choices[0].get("logprobs"))
        unsafe = score >= self.threshold if score is not None else not assessment.safe
        if not unsafe:
            return None
        category = _slug(assessment.names[0]) if assessment.names else self.category
        return self._verdict(direction, ",".join(assessment.codes) or "unsafe", category=category, score=score)

    def _turns(self, text: str, direction: Direction, context: GuardContext) -> list[tuple[str, str]]:
        """The conversation so far (user and assistant turns), ending with what is assessed: the user's last
        message (input) or the answer (output); the oldest turns dropped beyond `max_chars`."""
        turns: list[tuple[str, str]] = []
        request = getattr(context.request, "request", None)
        if isinstance(request, ChatCompletionRequest):
            for message in request.messages:
                if message.role in ("user", "assistant"):
                    content = _text(message.content)
                    if content:
                        turns.append((message.role, content))
        elif isinstance(request, CompletionRequest) and isinstance(request.prompt, str):
            turns.append(("user", request.prompt))
        if direction == "input":
            if not turns or turns[-1][0] != "user":
                turns = [("user", text)]
        else:
            turns = turns or [("user", "")]
            turns.append(("assistant", text))
        budget = self.max_chars
        kept: list[tuple[str, str]] = []
        for role, content in reversed(turns):
            if budget <= 0:
                break
            kept.append((role, content[-budget:]))
            budget -= len(content)
        kept.reverse()
        while len(kept) > 1 and kept[0][0] != "user":
            kept.pop(0)  # the template's conversation starts with the user
        return kept


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content
                         if isinstance(part, dict) and part.get("type") == "text")
    return ""


def _slug(name: str) -> str:
    return _NOT_SLUG.sub("-", name.lower()).strip("-")[:64] or "unsafe"


__all__ = ["LlamaGuard", "ModelCaller"]
