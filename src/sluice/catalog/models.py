"""Model architectures: the shapes the planner needs, and parameter counts computed from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.catalog.errors import CatalogError
from sluice.catalog.sources import Source, resolve_source


@dataclass(slots=True, frozen=True)
class ModelArch:
    """A decoder-only transformer with a gated MLP (SwiGLU/GeGLU), dense or mixture-of-experts.

    `intermediate_size` is per expert for MoE models. Parameter counts are computed from the shapes;
    `params_b`/`active_params_b` are the published counts, kept to check the shapes.
    """

    id: str
    name: str
    family: str
    layers: int
    hidden_size: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_context: int
    source: Source
    hf_repo: str = ""
    tie_word_embeddings: bool = False
    experts: int = 1
    experts_per_token: int = 1
    attention_bias: bool = False
    qk_norm: bool = False
    norms_per_layer: int = 2
    params_b: float | None = None
    active_params_b: float | None = None

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def attention_params_per_layer(self) -> int:
        """q, k, v and o projections (plus q/k/v biases where the family has them)."""
        weights = self.hidden_size * (2 * self.q_dim + 2 * self.kv_dim)
        return weights + (self.q_dim + 2 * self.kv_dim if self.attention_bias else 0)

    @property
    def expert_params(self) -> int:
        """gate, up and down projections of one expert (the whole MLP for a dense model)."""
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def router_params_per_layer(self) -> int:
        return self.hidden_size * self.experts if self.is_moe else 0

    @property
    def norm_params_per_layer(self) -> int:
        return self.norms_per_layer * self.hidden_size + (2 * self.head_dim if self.qk_norm else 0)

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def layer_linear_params(self) -> int:
        """Quantisable weights of one layer: attention and every expert (the router stays 16-bit)."""
        return self.attention_params_per_layer + self.experts * self.expert_params

    @property
    def total_params(self) -> int:
        per_layer = self.layer_linear_params + self.router_params_per_layer + self.norm_params_per_layer
        return self.layers * per_layer + self.embedding_params + self.lm_head_params + self.hidden_size

    @property
    def active_params(self) -> int:
        """Parameters touched per token: all but the experts a token is not routed to."""
        idle = self.layers * (self.experts - self.experts_per_token) * self.expert_params
        return self.total_params - idle

    @property
    def head_dim_matches_hidden(self) -> bool:
        return self.heads * self.head_dim == self.hidden_size

    def kv_bytes_per_token(self, bytes_per_element: float) -> float:
        """K and V for every layer: 2 × layers × kv_heads × head_dim × bytes (GQA-aware)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_element


_MODEL_INTS = ("layers", "hidden_size", "heads", "kv_heads", "head_dim", "intermediate_size", "vocab_size",
               "max_context")


def parse_model(raw: Any, sources: Mapping[str, Source], *, strict: bool) -> ModelArch:
    """One `models:` entry of a catalog file."""
    if not isinstance(raw, Mapping) or not raw.get("id"):
        raise CatalogError("models: every entry needs an id")
    model_id = str(raw["id"]).lower()
    where = f"models[{model_id}]"
    shape = {key: _positive_int(raw, key, where) for key in _MODEL_INTS}
    experts = int(raw.get("experts", 1))
    model = ModelArch(
        id=model_id, name=str(raw.get("name", model_id)), family=str(raw.get("family", "")),
        source=resolve_source(raw.get("source"), sources, where, required=strict),
        hf_repo=str(raw.get("hf_repo", "")), tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        experts=experts, experts_per_token=int(raw.get("experts_per_token", 2 if experts > 1 else 1)),
        attention_bias=bool(raw.get("attention_bias", False)), qk_norm=bool(raw.get("qk_norm", False)),
        norms_per_layer=int(raw.get("norms_per_layer", 2)),
        params_b=_optional_float(raw, "params_b"), active_params_b=_optional_float(raw, "active_params_b"),
        **shape,
    )
    check_shape(model, where)
    return model


def check_shape(model: ModelArch, where: str) -> None:
    """Reject shapes no engine could run: GQA needs kv_heads to divide heads, top-k within the experts."""
    if model.heads % model.kv_heads:
        raise CatalogError(f"{where}: kv_heads ({model.kv_heads}) must divide heads ({model.heads})")
    if not 1 <= model.experts_per_token <= model.experts:
        raise CatalogError(f"{where}: experts_per_token must be between 1 and experts ({model.experts})")


def _positive_int(raw: Mapping[str, Any], key: str, where: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CatalogError(f"{where}.{key}: must be a positive integer, got {value!r}")
    return value


def _optional_float(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    return None if value is None else float(value)
