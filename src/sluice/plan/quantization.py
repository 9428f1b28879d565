"""Weight quantisation schemes and KV-cache dtypes, named as vLLM's `--quantization`/`--kv-cache-dtype`."""

from __future__ import annotations

from dataclasses import dataclass

from sluice.plan.errors import PlanError

# AWQ and GPTQ (vLLM's Marlin kernels) store 4-bit weights plus, per group of 128 input channels, one
# fp16 scale and one packed 4-bit zero point: 4 + (16 + 4) / 128 = 4.156 bits per weight.
GROUP_128_INT4_BITS = 4 + (16 + 4) / 128
# bitsandbytes NF4 with double quantisation: an 8-bit absmax per 64 weights, plus an fp32 constant per
# 256 of those (Dettmers et al., QLoRA, 2023, section 3).
NF4_DOUBLE_QUANT_BITS = 4 + 8 / 64 + 32 / (64 * 256)


@dataclass(slots=True, frozen=True)
class Quantization:
    """How weights are stored and which tensor-core rate their GEMMs run at.

    `linear_weight_bits` covers the attention and MLP projections (group scales included); embeddings and
    the output head stay 16-bit unless `quantizes_embeddings` (GGUF quantises the whole file).
    `per_channel_scale_bytes`: an fp32 scale per output channel (FP8/INT8 checkpoints).
    `kernel_efficiency` scales the roofline efficiencies for kernels that dequantise on the fly.
    """

    id: str
    label: str
    linear_weight_bits: float
    compute: str = "bf16"
    per_channel_scale_bytes: int = 0
    quantizes_embeddings: bool = False
    kernel_efficiency: float = 1.0

    @property
    def is_gguf(self) -> bool:
        return self.id.startswith("gguf")


# Kernel efficiencies below 1 are estimates, not calibrated here: Marlin (AWQ/GPTQ) reaches close to the
# ideal 4x over FP16 at small batch (IST-DASLab/marlin README, 2024); vLLM's GGUF and bitsandbytes kernels
# are documented as slower, unoptimised paths (vLLM docs, "GGUF" and "BitsAndBytes", 2025).
QUANTIZATIONS: dict[str, Quantization] = {q.id: q for q in (
    Quantization("bf16", "BF16 (unquantised)", 16),
    Quantization("fp16", "FP16 (unquantised)", 16),
    Quantization("fp8", "FP8 W8A8 (per-channel scales)", 8, compute="fp8", per_channel_scale_bytes=4),
    Quantization("int8", "INT8 W8A8 (SmoothQuant-style)", 8, compute="int8", per_channel_scale_bytes=4),
    Quantization("awq", "AWQ INT4 W4A16, group 128", GROUP_128_INT4_BITS, kernel_efficiency=0.9),
    Quantization("gptq", "GPTQ INT4 W4A16, group 128", GROUP_128_INT4_BITS, kernel_efficiency=0.9),
    Quantization("bitsandbytes", "bitsandbytes NF4 (double quant)", NF4_DOUBLE_QUANT_BITS, kernel_efficiency=0.5),
    # GGUF block layouts (llama.cpp ggml-common.h): Q4_0 = 18 B / 32 weights, Q6_K = 210 B / 256,
    # Q8_0 = 34 B / 32. The _K_M mixes keep some tensors at Q6_K, hence the effective ~4.85 and ~5.7 bits.
    Quantization("gguf-q4_0", "GGUF Q4_0", 4.5, quantizes_embeddings=True, kernel_efficiency=0.6),
    Quantization("gguf-q4_k_m", "GGUF Q4_K_M", 4.85, quantizes_embeddings=True, kernel_efficiency=0.6),
    Quantization("gguf-q5_k_m", "GGUF Q5_K_M", 5.7, quantizes_embeddings=True, kernel_efficiency=0.6),
    Quantization("gguf-q6_k", "GGUF Q6_K", 6.5625, quantizes_embeddings=True, kernel_efficiency=0.6),
    Quantization("gguf-q8_0", "GGUF Q8_0", 8.5, quantizes_embeddings=True, kernel_efficiency=0.6),
)}

# `--kv-cache-dtype` values: 'auto' keeps the model dtype (2 bytes); the FP8 variants store 1 byte.
KV_CACHE_DTYPES: dict[str, int] = {"auto": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}


_ALIASES = {"none": "bf16", "auto": "bf16", "bfloat16": "bf16", "float16": "fp16", "awq_marlin": "awq",
            "gptq_marlin": "gptq", "fp8_w8a8": "fp8", "w8a8": "int8", "nf4": "bitsandbytes"}


def get_quantization(name: str | None) -> Quantization:
    """A scheme by id; None, 'none' and 'auto' mean unquantised BF16; 'q4_k_m' means 'gguf-q4_k_m'."""
    key = (name or "bf16").lower().replace("gguf_", "gguf-")
    key = _ALIASES.get(key, key)
    if key.startswith(("q4", "q5", "q6", "q8")):
        key = f"gguf-{key}"
    found = QUANTIZATIONS.get(key)
    if found is None:
        raise PlanError(f"unknown quantization '{name}' (known: {', '.join(QUANTIZATIONS)})")
    return found


def kv_cache_bytes(kv_cache_dtype: str) -> int:
    """Bytes per K or V element for a `--kv-cache-dtype` value."""
    size = KV_CACHE_DTYPES.get(kv_cache_dtype.lower())
    if size is None:
        raise PlanError(f"unknown kv-cache-dtype '{kv_cache_dtype}' (known: {', '.join(KV_CACHE_DTYPES)})")
    return size
