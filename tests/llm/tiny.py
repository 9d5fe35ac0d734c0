"""Tiny randomly initialized causal LMs with a character tokenizer and a chat template.

Built in the test, saved to a folder, loaded by path like any model: no hub, a few MB, fast.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

SPECIAL = ["<pad>", "<s>", "</s>", "<|end|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_tokenizer(chat: bool = True, pad: bool = True) -> PreTrainedTokenizerFast:
    """Character-level tokenizer: BOS prepended, EOS ``</s>``, turn end ``<|end|>``."""
    chars = sorted(set(string.ascii_letters + string.digits + string.punctuation + " \n"))
    vocab = {tok: i for i, tok in enumerate(SPECIAL + [c for c in chars if c not in "<>|"])}
    vocab.update({c: len(vocab) + j for j, c in enumerate("<>|")})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>" if pad else None,
        additional_special_tokens=SPECIAL[3:],
    )
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_model(
    tokenizer: PreTrainedTokenizerFast, seed: int = 0, layers: int = 2
) -> LlamaForCausalLM:
    """A 2-layer Llama with hidden size 32; EOS ids ``</s>`` and ``<|end|>``."""
    torch.manual_seed(seed)
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, end],
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def tiny_reward_model(
    tokenizer: PreTrainedTokenizerFast, seed: int = 3
) -> LlamaForSequenceClassification:
    """A 1-layer Llama with one output label (hidden size 16): a random reward model."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForSequenceClassification(config)


def save_tiny(path: Path, seed: int = 0, chat: bool = True, pad: bool = True) -> Path:
    """Save a tiny model and its tokenizer to ``path`` (a model folder ``wind train`` can load)."""
    tokenizer = tiny_tokenizer(chat=chat, pad=pad)
    tiny_model(tokenizer, seed).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
