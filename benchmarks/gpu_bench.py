"""A few WIND rounds in bf16 on a randomly initialized ~0.5B-parameter Llama, on one GPU.

    python benchmarks/gpu_bench.py --out OUT [--steps 6] [--layers 32]

Part of ``benchmarks/gpu_check.sh`` (which runs it under a time limit): nothing is downloaded.
The model is built from a config (hidden 1024, 32 layers, GQA 16/4 heads, MLP 4096: ~0.49B
parameters with the character tokenizer of tests/llm/tiny.py), its weights random and bf16;
random weights never sample EOS, so every response has ``max_new_tokens`` tokens (the slowest
case). One ``WINDTrainer`` run (wind-squared, beta 0.1: the reference is used; AdamW; one
optimizer step per round) on the built-in prompts with the heuristic oracle, then one held-out
evaluation (``--eval_prompts`` prompts: the evaluation's path on the device, in bf16; its time is
in ``seconds_train_call``, not in the per-round phases). Writes ``OUT/bench.json`` (device,
versions, parameters, samples/s, tokens/s, peak GPU memory, seconds per phase per round, the
evaluation's metrics) and ``OUT/metrics.jsonl`` (the trainer's log), also when stopped early
(SIGTERM or an error): it writes what it has.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("generate", "reference", "old_logprobs", "oracle", "train")


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for bench.json and metrics.jsonl")
    parser.add_argument(
        "--steps", type=int, default=6, help="rounds (one step each); first = warmup"
    )
    parser.add_argument("--layers", type=int, default=32, help="decoder layers (32: ~0.49B)")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per round")
    parser.add_argument("--samples", type=int, default=4, help="responses per prompt (K)")
    parser.add_argument("--max_new_tokens", type=int, default=128)
    parser.add_argument(
        "--eval_prompts", type=int, default=8, help="held-out prompts of the final evaluation"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CPU, fp32, a 2-layer width-64 model: checks the script",
    )
    cli = parser.parse_args()
    out = Path(cli.out)
    out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _stop)
    result: dict = {"status": "started", "argv": sys.argv[1:]}
    run_dir = Path(tempfile.mkdtemp(prefix="wind-gpu-bench-"))
    start = time.perf_counter()
    try:
        _bench(cli, run_dir, result)
        result["status"] = "complete"
    except BaseException as err:  # fail soft: keep what was measured
        result["status"] = "failed"
        result["error"] = f"{type(err).__name__}: {err}"
        result["traceback"] = traceback.format_exc()[-4000:]
    finally:
        result["seconds_total"] = round(time.perf_counter() - start, 2)
        _collect(run_dir, out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "traceback"}, indent=1))
    return 0 if result["status"] == "complete" else 1


def _bench(cli: argparse.Namespace, run_dir: Path, result: dict) -> None:
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(ROOT / "tests" / "llm"))
    from tiny import tiny_tokenizer

    from windalign.llm import WINDConfig, WINDTrainer
    from windalign.llm.data import load_prompts

    result["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    cuda = not cli.smoke
    if cuda and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device: this benchmark needs a GPU (--smoke runs on CPU)")
    result["device"] = torch.cuda.get_device_name(0) if cuda else "cpu (smoke)"
    width, layers = (1024, cli.layers) if cuda else (64, 2)
    tokenizer = tiny_tokenizer()
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=layers,
        num_attention_heads=16,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, end],
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device("cuda" if cuda else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16 if cuda else torch.float32)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    result["parameters"] = sum(p.numel() for p in model.parameters())
    result["seconds_build"] = round(time.perf_counter() - t0, 2)
    args = WINDConfig(
        output_dir=str(run_dir),
        objective="wind-squared",
        beta=0.1,
        num_samples=cli.samples,
        max_new_tokens=cli.max_new_tokens,
        max_prompt_length=128,
        prompt_truncation="left",
        per_device_train_batch_size=cli.prompts,
        generation_batch_size=cli.prompts,
        max_steps=cli.steps,
        learning_rate=1e-6,
        bf16=cuda,
        use_cpu=not cuda,
        save_strategy="no",
        eval_strategy="steps",  # one held-out evaluation, after the last round (on the GPU)
        eval_steps=cli.steps,
        eval_samples=2,
        report_to=[],
        disable_tqdm=True,
        seed=0,
    )
    result["config"] = {
        "layers": layers,
        "hidden_size": width,
        "prompts_per_round": cli.prompts,
        "num_samples": cli.samples,
        "max_new_tokens": cli.max_new_tokens,
        "weights": ("bf16 (pure)" if cuda else "fp32") + ", AdamW, one optimizer step per round",
    }
    trainer = WINDTrainer(
        model,
        args=args,
        preference="heuristic",
        train_dataset="builtin:train",
        eval_dataset=load_prompts("builtin:heldout")[: cli.eval_prompts],
        processing_class=tokenizer,
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer.train()
    if cuda:
        torch.cuda.synchronize()
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    result["seconds_train_call"] = round(time.perf_counter() - t0, 2)


def _collect(run_dir: Path, out: Path, result: dict) -> None:
    """Throughput and time breakdown from the trainer's metrics (warmup round excluded)."""
    metrics = run_dir / "metrics.jsonl"
    rows = []
    if metrics.is_file():
        shutil.copy(metrics, out / "metrics.jsonl")
        for line in metrics.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if "loss" in row:
                rows.append(row)
            if "eval_win_rate" in row:  # the evaluation ran on the device, in its precision
                result["evaluation"] = {k: v for k, v in row.items() if k.startswith("eval_")}
    try:
        import torch

        if torch.cuda.is_initialized() and "peak_memory_gib" not in result:
            result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    except Exception:  # best effort while failing soft
        pass
    result["rounds_logged"] = len(rows)
    if rows and result.get("seconds_train_call"):  # warmup included
        result["samples_per_second_wall"] = round(
            rows[-1]["samples"] / result["seconds_train_call"], 2
        )
    if len(rows) >= 2:  # per round, after the first (warmup: CUDA init, autotuning)
        first, last = rows[0], rows[-1]
        n = last["rounds"] - first["rounds"]
        per = {p: (last[f"seconds_{p}"] - first[f"seconds_{p}"]) / n for p in PHASES}
        measured = sum(per.values())
        samples = (last["samples"] - first["samples"]) / n
        tokens = (last["tokens"] - first["tokens"]) / n
        result["per_round_seconds"] = {k: round(v, 4) for k, v in per.items()}
        result["samples_per_round"] = samples
        result["samples_per_second"] = round(samples / measured, 2)
        result["tokens_per_second_generated"] = round(tokens / measured, 1)
        result["generate_tokens_per_second"] = round(tokens / max(per["generate"], 1e-9), 1)
    (out / "bench.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
