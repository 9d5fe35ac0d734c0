"""The padded share of WIND's log-prob passes at natural response lengths, and what regrouping
the rows could save (issue 17). Counts, not timings: it may run beside other work.

    python benchmarks/llm_padding.py --out docs/benchmarks     # CPU, ~10 minutes

Samples ``--rounds`` rounds of the trainer's sampler (SmolLM2-135M-Instruct, fp32, the built-in
train split in order, 4 prompts x K = 4 samples, temperature 0.7, responses ending at EOS or
``--max-new-tokens``), then counts the token positions one shared-prompt pass
(``windalign.lm.tokens.pack``: ``U`` prompts of the widest prompt, ``n`` responses of the
longest response) computes and the share of them that is padding, for:

* ``one pack`` -- the round's 4 prompts in one micro-batch (the trainer with
  ``per_device_train_batch_size: 4``, and its reference and old-log-prob passes);
* ``pairs by length`` -- 2 micro-batches of 2 prompts, the prompts sorted by their longest
  response (bucketing that keeps each prompt's K samples together, as every loss needs);
* ``each prompt alone`` -- one micro-batch per prompt: the least padding any regrouping that
  keeps a prompt's K samples together can reach; what is left is the padding among a prompt's
  own K responses, which only packing (no padding at all) removes.

Writes ``llm_padding.json`` and ``llm_padding.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

Group = tuple[list[int], list[list[int]]]  # a prompt and its K responses


def positions(groups: list[Group]) -> int:
    """Token positions of one shared-prompt pass over ``groups``: ``U * Lp + n * R``.

    >>> positions([([1, 2, 3], [[4], [5, 6]]), ([7], [[8, 9, 10], [11]])])
    18
    """
    lp = max(len(p) for p, _ in groups)
    r = max(len(y) for _, ys in groups for y in ys)
    return len(groups) * lp + sum(len(ys) for _, ys in groups) * r


def padded_shares(groups: list[Group]) -> dict[str, float]:
    """The padded share of a round's passes under each grouping of its prompts.

    >>> shares = padded_shares([([1], [[2], [3, 4]]), ([5], [[6, 7, 8, 9], [10, 11, 12, 13]])])
    >>> round(shares["one pack"], 3), round(shares["each prompt alone"], 3)
    (0.278, 0.071)
    """
    tokens = sum(len(p) + sum(map(len, ys)) for p, ys in groups)
    by_length = sorted(groups, key=lambda g: max(map(len, g[1])))
    half = len(groups) // 2
    layouts = {
        "one pack": [groups],
        "pairs by length": [by_length[:half], by_length[half:]] if half else [groups],
        "each prompt alone": [[g] for g in groups],
    }
    return {name: 1 - tokens / sum(positions(part) for part in parts)
            for name, parts in layouts.items()}  # fmt: skip


def sample_rounds(rounds: int, max_new_tokens: int, seed: int) -> list[list[Group]]:
    import torch
    from llm_generation import load  # the same model, prompts and EOS ids as its sampler

    from windalign.llm import rollout

    model, tokenizer, prompts, eos = load()
    config = rollout.sampling_config(eos, tokenizer.pad_token_id, temperature=0.7,
                                     max_new_tokens=max_new_tokens)  # fmt: skip
    torch.manual_seed(seed)
    out = []
    for r in range(rounds):
        batch = [list(p) for p in prompts[4 * r : 4 * r + 4]]
        with torch.no_grad():
            responses, _ = rollout.generate(model, batch, 4, config, eos)
        out.append(list(zip(batch, responses, strict=True)))
        print(f"max_new_tokens {max_new_tokens}, round {r + 1}/{rounds}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/llm-padding"))
    p.add_argument("--rounds", type=int, default=12, help="rounds sampled per length")
    p.add_argument("--max-new-tokens", type=int, nargs="+", default=[40, 128])
    p.add_argument("--seed", type=int, default=0)
    cli = p.parse_args(argv)
    results: dict[str, Any] = {}
    for length in cli.max_new_tokens:
        rounds = sample_rounds(cli.rounds, length, cli.seed)
        shares = [padded_shares(groups) for groups in rounds]
        lengths = [len(y) for groups in rounds for _, ys in groups for y in ys]
        spread = {k: [s[k] for s in shares] for k in shares[0]}
        results[str(length)] = {
            "mean_response_tokens": statistics.fmean(lengths),
            "at_max_new_tokens": sum(n == length for n in lengths) / len(lengths),
            "padded": {
                k: {"mean": statistics.fmean(v), "min": min(v), "max": max(v)}
                for k, v in spread.items()
            },
        }
    lines = [
        "# Padding in WIND's log-prob passes at natural response lengths", "",
        f"`python benchmarks/llm_padding.py --out docs/benchmarks`: {cli.rounds} rounds of 4 "
        "prompts x 4 samples per length (SmolLM2-135M-Instruct, fp32, temperature 0.7, the "
        f"built-in train split in order, seed {cli.seed}), each response ending at EOS or at "
        "`max_new_tokens`. Cells: the share of one shared-prompt pass's token positions that is "
        "padding, mean [min, max] over rounds, for the round's prompts in one micro-batch (the "
        "trainer today), in two micro-batches of two prompts sorted by length (bucketing), and "
        "one micro-batch per prompt (the floor of any regrouping that keeps a prompt's K samples "
        "together; the rest is padding among a prompt's own responses).", "",
        "| max_new_tokens | mean response tokens | at the limit | one pack | pairs by length "
        "| each prompt alone |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for length, r in results.items():
        cells = " | ".join(f"{r['padded'][k]['mean']:.1%} [{r['padded'][k]['min']:.0%}, "
                           f"{r['padded'][k]['max']:.0%}]" for k in r["padded"])  # fmt: skip
        lines.append(f"| {length} | {r['mean_response_tokens']:.1f} | "
                     f"{r['at_max_new_tokens']:.0%} | {cells} |")  # fmt: skip
    cli.out.mkdir(parents=True, exist_ok=True)
    meta = {"rounds": cli.rounds, "seed": cli.seed, "prompts": 4, "k": 4, "temperature": 0.7}
    (cli.out / "llm_padding.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=1) + "\n"
    )
    (cli.out / "llm_padding.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
