"""LoRA adapters made on the spot: a PEFT folder for a transformers model, a GGUF LoRA file for a GGUF model.

Their libraries (torch, transformers, peft; gguf, numpy) are imported when one is made, so a test module can
`pytest.importorskip` them first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def make_peft_adapter(base_dir: Path, out: Path, target_modules: tuple[str, ...] = ("q_proj", "v_proj"), *,
                      rank: int = 4, b_std: float = 0.5, seed: int = 1) -> Path:
    """A LoRA (alpha = 2 x rank) on `base_dir`'s `target_modules`, saved to `out`. lora_B is drawn at random with
    `b_std`: PEFT starts it at zero, an adapter that changes nothing."""
    import peft
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(base_dir)
    tuned = peft.get_peft_model(model, peft.LoraConfig(r=rank, lora_alpha=2 * rank,
                                                       target_modules=list(target_modules)))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in tuned.named_parameters():
            if "lora_B" in name:
                weight.copy_(torch.randn(weight.shape, generator=generator) * b_std)
    tuned.save_pretrained(out)
    return out


def write_gguf_lora(path: Path, model_file: Path, *, b_std: float, rank: int = 8, arch: str = "llama",
                    input_width: Callable[[int], int] = lambda n: n, unpaired: bool = False) -> Path:
    """A LoRA on every layer's attn_q and attn_v of the GGUF model in `model_file`, as llama.cpp's
    convert_lora_to_gguf.py writes one: general.type adapter, adapter.type lora, adapter.lora.alpha (= rank),
    lora_a (rank x in) and lora_b (out x rank) per adapted tensor. `input_width`, `arch` and `unpaired` spoil it
    for tests of what a runtime refuses."""
    import gguf
    import numpy as np

    model = gguf.GGUFReader(model_file)
    writer = gguf.GGUFWriter(path, arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(rank))
    rng = np.random.default_rng(0)
    for tensor in model.tensors:
        if not tensor.name.endswith(("attn_q.weight", "attn_v.weight")):
            continue
        n_in, n_out = (int(n) for n in tensor.shape)  # ggml order: the input dimension first
        n_in = input_width(n_in)
        writer.add_tensor(tensor.name + ".lora_a", rng.normal(0, n_in ** -0.5, (rank, n_in)).astype(np.float32))
        if not unpaired:
            writer.add_tensor(tensor.name + ".lora_b", (rng.normal(0, 1, (n_out, rank)) * b_std).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
