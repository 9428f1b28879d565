"""A tiny randomly initialised Llama with a word-level tokenizer and a chat template, written offline to a folder.

The transformers backend's tests serve it; torch, transformers and tokenizers are imported when it is written, so
a test module can `pytest.importorskip` them first.
"""

from __future__ import annotations

from pathlib import Path

WORDS = ("user", "assistant", "system", "hello", "world", "the", "cat", "sat", "on", "a", "mat", "dog",
         "ran", "far", "away", "tell", "me", "story", "about", "sky", "sea", "blue", "green", "red",
         "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
SPECIAL = ("[UNK]", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|>{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant{% endif %}")


def write_tiny_llama(directory: Path, *, hidden_size: int = 32, layers: int = 2, context_tokens: int = 8192,
                     seed: int = 0) -> Path:
    """A Llama with random weights (4 heads, 2 KV heads, no EOS, so it talks until max_tokens) and its tokenizer,
    in `directory`; the same arguments write the same weights."""
    import tokenizers
    import torch
    import transformers

    vocab = {token: index for index, token in enumerate((*SPECIAL, *WORDS))}
    core = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    core.decoder = tokenizers.decoders.WordPiece()  # joins words with spaces
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]",
                                                     additional_special_tokens=list(SPECIAL[1:]))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(vocab_size=len(vocab), hidden_size=hidden_size,
                                      intermediate_size=2 * hidden_size, num_hidden_layers=layers,
                                      num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=context_tokens, bos_token_id=None,
                                      eos_token_id=None, pad_token_id=None)
    transformers.LlamaForCausalLM(config).save_pretrained(directory)
    return directory
