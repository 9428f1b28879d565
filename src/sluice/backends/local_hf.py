"""Adapter that runs a transformers causal-LM directory in-process on CPU or a GPU (chat and completions)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sluice.backends._peft_adapter import PeftAdapter
from sluice.backends._threaded import (
    LocalGenerationBackend,
    Sampling,
    TokenRun,
    chat_messages,
    completion_prompt,
    plain_chat_prompt,
)
from sluice.backends.base import ServedAdapter
from sluice.backends.types import (
    BackendCall,
    ChatCompletionRequest,
)
from sluice.config import TransformersBackendConfig
from sluice.errors import BackendNotReady, InvalidRequest

_WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth")  # sharded files and their index match too


class TransformersBackend(LocalGenerationBackend):
    type = "transformers"
    _config: TransformersBackendConfig

    def load_model(self) -> _TorchTokenModel:
        return _TorchTokenModel.load(self._config)


class _TorchTokenModel:
    """A manual KV-cached decode loop, so each token is sampled with our own seeded generator."""

    def __init__(self, model: Any, tokenizer: Any, device: str, adapter: ServedAdapter | None = None) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._device = device
        self.adapter = adapter  # the LoRA adapter applied to the model, if any (`TokenModel`)
        ends = {tokenizer.eos_token_id, *_as_ids(getattr(model.generation_config, "eos_token_id", None))}
        self._end_ids = frozenset(token for token in ends if token is not None)
        self._context_tokens: int | None = getattr(model.config, "max_position_embeddings", None)
        # transformers 5 renamed the KV-cache argument and output from `past_key_values` to `cache`. An unmerged
        # PEFT model's forward takes **kwargs and passes them on: its base model's forward says which name.
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        forward_args = inspect.signature(base.forward).parameters
        self._cache_name = "cache" if "cache" in forward_args else "past_key_values"

    @classmethod
    def load(cls, config: TransformersBackendConfig) -> _TorchTokenModel:
        path = Path(config.path).expanduser()
        if not (path / "config.json").is_file():
            raise BackendNotReady(f"not a transformers model directory (no config.json): {path}")
        if not any(any(path.glob(pattern)) for pattern in _WEIGHT_FILES):
            raise BackendNotReady(f"no weights in the model directory (no {' / '.join(_WEIGHT_FILES)}): {path}")
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise BackendNotReady("transformers backends need torch and transformers: "
                                  "pip install 'sluicegate[local]' (see docs/local-models.md)") from exc
        peft_adapter = PeftAdapter.check(config, path) if config.adapter is not None else None
        dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
        adapter = None
        if peft_adapter is not None:
            model, adapter = peft_adapter.apply(model, path)
        model.to(config.device).eval()
        return cls(model, tokenizer, config.device, adapter)

    def begin(self, call: BackendCall, sampling: Sampling) -> TokenRun:
        tokenizer = self._tokenizer
        if isinstance(call.request, ChatCompletionRequest):
            messages = chat_messages(call.request)
            if tokenizer.chat_template:
                text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            else:
                text = plain_chat_prompt(messages)
            # A chat template writes its own special tokens; adding them again would double the BOS.
            prompt_ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            prompt = completion_prompt(call.request)
            prompt_ids = list(tokenizer(prompt)["input_ids"]) if isinstance(prompt, str) else list(prompt)
            if any(not 0 <= token < len(tokenizer) for token in prompt_ids):
                raise InvalidRequest(f"prompt token ids must be in [0, {len(tokenizer)})", param="prompt")
        if not prompt_ids:
            raise InvalidRequest("the prompt is empty", param="prompt")
        return TokenRun(prompt_tokens=len(prompt_ids), tokens=self._sample(prompt_ids, sampling),
                        context_tokens=self._context_tokens)

    def decode(self, token_ids: Sequence[int]) -> str:
        return str(self._tokenizer.decode(list(token_ids), skip_special_tokens=True))

    def is_end(self, token_id: int) -> bool:
        return token_id in self._end_ids

    def _sample(self, prompt_ids: list[int], sampling: Sampling) -> Iterator[int]:
        import torch

        generator = torch.Generator(device=self._device).manual_seed(sampling.seed)
        with torch.inference_mode():
            input_ids = torch.tensor([prompt_ids], device=self._device)
            counts = torch.zeros(self._model.config.vocab_size, device=self._device)
            past: Any = None
            while True:
                output = self._model(input_ids=input_ids, use_cache=True, logits_to_keep=1,
                                     **{self._cache_name: past})
                past = output[self._cache_name]
                logits = output.logits[0, -1].float()
                if sampling.presence_penalty or sampling.frequency_penalty:
                    logits -= sampling.presence_penalty * (counts > 0) + sampling.frequency_penalty * counts
                token = _pick(logits, sampling, generator)
                counts[token] += 1
                yield token
                input_ids = torch.tensor([[token]], device=self._device)


def _pick(logits: Any, sampling: Sampling, generator: Any) -> int:
    """Greedy at temperature 0, else temperature + nucleus (top_p) sampling."""
    import torch

    if sampling.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= sampling.top_p
        outside[0] = False
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


def _as_ids(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else list(value)
