"""Held-out evaluation: win rate with its interval, KL estimate, periodic eval, wind evaluate."""

from __future__ import annotations

import json
import time

import pytest
import torch
from conftest import count_a
from tiny import save_tiny, tiny_model, tiny_tokenizer

from windalign.cli import main
from windalign.llm import WINDConfig, WINDTrainer
from windalign.llm.evaluate import EvalResult, SampleCache, evaluate, mean_interval, report
from windalign.preferences import RewardFunctionOracle

PROMPTS = ["Say hi.", "Name a fruit.", "Count to three.", "Write a word."]


def test_interval_is_student_t_over_prompts():
    mean, _, hi = mean_interval([0.2, 0.4, 0.9, 0.5])
    assert mean == pytest.approx(0.5)
    assert hi - mean == pytest.approx(3.182446 * 0.294392 / 2, rel=1e-4)
    assert mean_interval([0.3])[1] != mean_interval([0.3])[1]  # one prompt: no interval (NaN)


def test_a_model_against_itself_has_zero_kl_and_a_fair_win_rate():
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=2)
    oracle = RewardFunctionOracle(count_a)
    result = evaluate(model, model, tok, PROMPTS, oracle, samples=3, max_new_tokens=6)
    s = result.summary
    assert s["kl"] == 0 and s["prompts"] == 4 and s["samples"] == 3
    assert s["win_rate_lo"] < 0.5 < s["win_rate_hi"]
    assert oracle.counters.queries == 4 * 9  # every policy sample against every baseline sample


def test_win_rate_and_kl_match_a_direct_computation():
    tok = tiny_tokenizer()
    a, b = tiny_model(tok, seed=2), tiny_model(tok, seed=3)
    oracle = RewardFunctionOracle(count_a)
    result = evaluate(a, b, tok, PROMPTS[:2], oracle, samples=2, max_new_tokens=5)
    for row in result.per_prompt:
        r = torch.tensor(count_a([row["prompt"]], [row["policy"] + row["baseline"]])[0])
        want = torch.sigmoid(r[:2, None] - r[None, 2:]).mean().item()
        assert row["win_rate"] == pytest.approx(want, abs=1e-6)
    assert result.summary["kl"] != 0


def test_the_baseline_is_sampled_once_and_reused_with_a_cache():
    """A fixed baseline under a fixed baseline_seed draws the same responses at every call: with
    a cache they are generated once, and the result equals an evaluation without the cache."""
    tok = tiny_tokenizer()
    a, b = tiny_model(tok, seed=2), tiny_model(tok, seed=3)
    calls = []
    original = b.generate
    b.generate = lambda *args, **kw: calls.append(1) or original(*args, **kw)
    cache, oracle = {}, RewardFunctionOracle(count_a)
    kw = {"samples": 2, "max_new_tokens": 5, "batch_size": 2, "baseline_seed": 7}
    first = evaluate(a, b, tok, PROMPTS, oracle, seed=1, baseline_cache=cache, **kw)
    assert len(calls) == 2  # two batches of two prompts
    again = evaluate(a, b, tok, PROMPTS, oracle, seed=5, baseline_cache=cache, **kw)
    assert len(calls) == 2  # not sampled again
    fresh = evaluate(a, b, tok, PROMPTS, oracle, seed=5, **kw)
    assert len(calls) == 4
    assert [r["baseline"] for r in again.per_prompt] == [r["baseline"] for r in first.per_prompt]
    assert again.per_prompt == fresh.per_prompt and again.summary == fresh.summary
    assert [r["policy"] for r in again.per_prompt] != [r["policy"] for r in first.per_prompt]


def test_a_disk_cache_gives_other_runs_the_same_baseline_samples_and_no_other_models(tmp_path):
    """``SampleCache``: a new cache on the same folder and an identical baseline (another object
    with the same weights) draws nothing and gives a fresh evaluation's result; other weights,
    another precision regime or another seed draw their own; a damaged file is drawn again and
    rewritten whole."""
    tok = tiny_tokenizer()
    a, b, twin = tiny_model(tok, seed=2), tiny_model(tok, seed=3), tiny_model(tok, seed=3)
    calls = []
    for m in (b, twin):
        original = m.generate
        m.generate = lambda *args, _o=original, **kw: calls.append(1) or _o(*args, **kw)
    oracle = RewardFunctionOracle(count_a)
    kw = {"samples": 2, "max_new_tokens": 5, "batch_size": 2, "baseline_seed": 7, "seed": 1}

    def run(model, **more):
        cache = SampleCache(tmp_path, model)
        return evaluate(a, model, tok, PROMPTS, oracle, baseline_cache=cache, **(kw | more)), cache

    first, cache = run(b)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.json"))) == 2  # a file per batch
    again, _ = run(twin)
    assert len(calls) == 2  # read from the folder
    assert again.per_prompt == first.per_prompt and again.summary == first.summary
    keys = list(cache.keys())
    other = tiny_model(tok, seed=4)
    assert len(keys) == 2 and all(k in SampleCache(tmp_path, twin) for k in keys)
    assert not any(k in SampleCache(tmp_path, other) for k in keys)  # same folder, other weights
    assert not any(k in SampleCache(tmp_path, b, precision="bf16") for k in keys)
    run(twin, baseline_seed=8)  # another seed: its own samples
    assert len(calls) == 4 and len(list(tmp_path.glob("*.json"))) == 4
    for path in tmp_path.glob("*.json"):
        path.write_text('{"half a fi')  # damaged files: drawn again, then rewritten whole
    third, _ = run(twin)
    assert len(calls) == 6 and third.per_prompt == first.per_prompt
    run(twin)
    assert len(calls) == 6  # read, not drawn


def test_runs_with_eval_baseline_cache_share_the_initial_policys_samples(tiny_dir, tmp_path):
    """``eval_baseline_cache``: a second run against the same initial model reads the baseline's
    samples the first one wrote (shown by altering them on disk in between)."""

    def trainer(name):
        args = WINDConfig(
            output_dir=str(tmp_path / name), use_cpu=True, max_steps=1,
            per_device_train_batch_size=2,
            num_samples=2, max_new_tokens=5, save_strategy="no", disable_tqdm=True, beta=0.0,
            eval_strategy="steps", eval_steps=1, eval_samples=2,
            eval_baseline_cache=str(tmp_path / "cache"),
        )  # fmt: skip
        return WINDTrainer(
            str(tiny_dir), args=args, preference=count_a, train_dataset=PROMPTS,
            eval_dataset=PROMPTS,
        )  # fmt: skip

    first = trainer("one")
    # the key a script evaluating the saved model in fp32 files them under (the sweep's targets)
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    assert first._baseline_samples.tag == SampleCache(tmp_path, saved).tag
    first.train()
    files = list((tmp_path / "cache").glob("*.json"))
    assert files  # one per evaluation batch
    a = first.processing_class.convert_tokens_to_ids("a")
    assert a != first.processing_class.unk_token_id
    for path in files:  # every baseline response becomes the single token "a"
        ids, cut = json.loads(path.read_text())
        path.write_text(json.dumps([[[[a] for _ in row] for row in ids], cut]))
    second = trainer("two")
    second.train()
    assert {t for r in second.last_evaluation.per_prompt for t in r["baseline"]} == {"a"}
    assert {t for r in first.last_evaluation.per_prompt for t in r["baseline"]} != {"a"}


def by_position(prompts, responses):
    """Reward: the policy's samples (listed first) win on the first prompt, lose on the rest."""
    return [
        [10.0 * ((j < len(rs) // 2) == (p == PROMPTS[0])) for j in range(len(rs))]
        for p, rs in zip(prompts, responses, strict=True)
    ]


def test_two_prompts_give_a_clipped_interval_and_a_report_that_says_why():
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=2)
    oracle = RewardFunctionOracle(by_position)
    result = evaluate(model, model, tok, PROMPTS[:2], oracle, samples=2, max_new_tokens=4)
    s = result.summary
    assert [round(r["win_rate"], 3) for r in result.per_prompt] == [1.0, 0.0]
    assert s["win_rate"] == pytest.approx(0.5) and (s["win_rate_lo"], s["win_rate_hi"]) == (0, 1)
    text = report(result, "two prompts")
    assert "| **0.500** | [0.000, 1.000] |" in text
    assert "> Only 2 prompts: the intervals are rough" in text and "below zero" not in text
    noisy = EvalResult({**s, "kl": -0.04}, result.per_prompt)
    assert "> The KL estimate -0.040 is below zero" in report(noisy, "negative KL")
    assert "sampling noise" in report(noisy, "negative KL")


def test_trainer_evaluates_against_the_initial_policy_every_few_steps(tiny_dir, tmp_path):
    args = WINDConfig(
        output_dir=str(tmp_path / "run"), use_cpu=True, max_steps=2, per_device_train_batch_size=2,
        num_samples=3, max_new_tokens=6, save_strategy="no", disable_tqdm=True, beta=0.0,
        eval_strategy="steps", eval_steps=2, eval_on_start=True, eval_samples=2,
    )  # fmt: skip
    tr = WINDTrainer(
        str(tiny_dir), args=args, preference=count_a, train_dataset=PROMPTS, eval_dataset=PROMPTS
    )
    assert tr.ref_model is not None  # built for the evaluation although beta = 0
    calls = []
    original = tr.ref_model.generate
    tr.ref_model.generate = lambda *a, **kw: calls.append(1) or original(*a, **kw)
    tr.train()
    assert len(calls) == 1  # the initial policy's samples: drawn at step 0, reused at step 2
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval_win_rate" in r]
    assert [r["step"] for r in evals] == [0, 2]
    # the initial policy against itself: KL 0 up to float rounding (the two models' shared
    # prompt caches are separate tensors; the CPU kernels round by memory layout)
    assert abs(evals[0]["eval_kl"]) < 1e-6 and evals[0]["queries"] == 0
    assert evals[1]["queries"] == 2 * 2 * 3 and evals[1]["eval_kl"] != 0


def test_wall_seconds_cover_every_phase_and_leave_out_the_evaluation(tiny_dir, tmp_path):
    """``seconds_wall`` (the time axis of docs/results-llm.md) holds every phase of the training
    steps and none of the evaluation: an oracle that sleeps 0.3 s per call makes a miss visible."""

    def slow(prompts, responses):
        time.sleep(0.3)
        return count_a(prompts, responses)

    args = WINDConfig(
        output_dir=str(tmp_path / "run"), use_cpu=True, max_steps=3, per_device_train_batch_size=2,
        num_samples=2, max_new_tokens=4, save_strategy="no", disable_tqdm=True, beta=0.0,
        eval_strategy="steps", eval_steps=1, eval_samples=1, logging_steps=1,
    )  # fmt: skip
    tr = WINDTrainer(
        str(tiny_dir), args=args, preference=slow, train_dataset=PROMPTS, eval_dataset=PROMPTS
    )
    tr.train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if "loss" in r][-1]
    phases = sum(last[f"seconds_{p}"] for p in ("generate", "reference", "old_logprobs", "oracle",
                                                 "train"))  # fmt: skip
    assert last["seconds_oracle"] >= 3 * 0.3 and last["seconds_evaluate"] >= 2 * 0.3
    assert phases <= last["seconds_wall"] < phases + 0.25


def test_wind_evaluate_writes_report_and_results(tmp_path, capsys):
    a, b = save_tiny(tmp_path / "a", seed=1), save_tiny(tmp_path / "b", seed=2)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", str(a), "--baseline", str(b), "--prompts", str(prompts),
            "--preference", "heuristic", "--samples", "2", "--max-new-tokens", "5",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["summary"]["prompts"] == 4 and len(results["prompts"]) == 4
    assert "| win rate P(policy > baseline) |" in (out / "report.md").read_text()
    assert json.loads((out / "status.json").read_text())["status"] == "complete"
    assert "win rate" in capsys.readouterr().out
    assert main([*argv[:-2], "--out", str(out), "--samples", "0"]) == 2


def test_best_of_n_keeps_the_oracle_winner_of_n_draws_and_beats_its_own_samples():
    """``best_of = 4``: each policy sample is the highest-reward draw of 4 (the draws are those
    of ``4 x samples`` responses under the policy's batch seed), its KL is not estimated, and
    Best-of-4 of a model beats the model's own samples (count_a has few ties)."""
    from windalign.llm import rollout
    from windalign.llm.data import encode_prompts
    from windalign.llm.evaluate import batch_seed

    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=2)
    kw = {"samples": 2, "max_new_tokens": 8, "batch_size": 4, "seed": 3}
    prompts = PROMPTS * 3

    def sharp(prompts, responses):  # count_a's order, Bradley-Terry probabilities near 0 or 1
        return [[10 * r for r in row] for row in count_a(prompts, responses)]

    best = evaluate(model, model, tok, prompts, RewardFunctionOracle(sharp), best_of=4, **kw)
    assert best.summary["kl"] != best.summary["kl"]  # NaN: Best-of-N has no log-probability
    assert best.summary["win_rate_lo"] > 0.5
    # the draws, again: the first batch's 4 prompts x 8 responses under the policy's seed
    eos = rollout.eos_token_ids(model, tok)
    config = rollout.sampling_config(eos, tok.pad_token_id, temperature=0.7, max_new_tokens=8)
    torch.manual_seed(batch_seed(3, 0, 0))
    ids, _ = rollout.generate(model, encode_prompts(tok, prompts[:4], 256, "left"), 8, config, eos)
    for b, row in enumerate(best.per_prompt[:4]):
        texts = tok.batch_decode(ids[b], skip_special_tokens=True)
        rewards = count_a([row["prompt"]], [texts])[0]
        for g, kept in enumerate(row["policy"]):
            group = rewards[4 * g : 4 * g + 4]
            assert count_a([row["prompt"]], [[kept]])[0][0] == max(group)
    with pytest.raises(ValueError, match="best_of must be an integer >= 1"):
        evaluate(model, model, tok, prompts, RewardFunctionOracle(count_a), best_of=0)


def test_the_trainer_writes_each_prompt_of_each_evaluation(tiny_dir, tmp_path):
    """``evaluations.jsonl``: one line per evaluation with every held-out prompt's win rate and
    KL, whose means are the logged ``eval_win_rate`` and ``eval_kl``."""
    args = WINDConfig(
        output_dir=str(tmp_path / "run"), use_cpu=True, max_steps=2, per_device_train_batch_size=2,
        num_samples=2, max_new_tokens=5, save_strategy="no", disable_tqdm=True, beta=0.0,
        eval_strategy="steps", eval_steps=1, eval_samples=2,
    )  # fmt: skip
    WINDTrainer(
        str(tiny_dir), args=args, preference=count_a, train_dataset=PROMPTS, eval_dataset=PROMPTS
    ).train()
    run = tmp_path / "run"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    logged = {r["step"]: r for r in rows if "eval_win_rate" in r}
    evals = [json.loads(x) for x in (run / "evaluations.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [1, 2] == sorted(logged)
    for e in evals:
        assert [p["index"] for p in e["prompts"]] == list(range(len(PROMPTS)))
        for key in ("win_rate", "kl"):
            mean = sum(p[key] for p in e["prompts"]) / len(PROMPTS)
            assert mean == pytest.approx(logged[e["step"]][f"eval_{key}"], abs=1e-9)


def test_best_of_n_takes_the_first_of_equals_and_reads_one_way_answers_both_ways():
    """``_winners``: in each group of N the highest mean preference wins; a pair answered in one
    direction counts both ways; among equals the first draw is kept."""
    from windalign.llm.evaluate import _winners

    tok = tiny_tokenizer()
    ids = [[[5], [6], [7], [8]]]  # one prompt, 2 groups of N = 2
    cut = [[False, True, False, True]]

    def oracle(prompts, texts, pairs):
        P = torch.full((1, 4, 4), float("nan"))
        P[0, 0, 1] = 0.2  # group 0: draw 1 beats draw 0 (answered as (0, 1) only)
        P[0, 2, 3] = 0.5  # group 1: a tie, the first is kept
        return P

    kept, truncated = _winners((ids, cut), ["x"], 2, tok, oracle)
    assert kept == [[[6], [7]]] and truncated == [[True, False]]
