"""WINDTrainer on tiny models: every objective, THEORY.md 8 property 8, costs, LoRA, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import count_a
from tiny import tiny_model, tiny_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from windalign.llm import WINDConfig, WINDTrainer
from windalign.llm.state import is_complete
from windalign.llm.trainer import NonFiniteLossError
from windalign.lm import tokens
from windalign.objectives import LOSSES, SampleBatch, compute_loss
from windalign.preferences import PreferenceOracle

PROMPTS = [f"Write {w} with many a letters." for w in ("one", "two", "three", "four", "five")]
PROMPTS += ["Say hi.", "Name a fruit.", "Count to three."]


def config(tmp_path: Path, **kw) -> WINDConfig:
    base = dict(
        output_dir=str(tmp_path / "run"),
        use_cpu=True,
        max_steps=2,
        per_device_train_batch_size=2,
        num_samples=3,
        max_new_tokens=8,
        learning_rate=1e-3,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=0,
    )
    return WINDConfig(**{**base, **kw})


def trainer(tiny_dir: Path, tmp_path: Path, preference=count_a, prompts=PROMPTS, **kw):
    return WINDTrainer(
        str(tiny_dir), args=config(tmp_path, **kw), preference=preference, train_dataset=prompts
    )


def metrics(tr: WINDTrainer) -> list[dict]:
    lines = (Path(tr.args.output_dir) / "metrics.jsonl").read_text().splitlines()
    return [row for row in map(json.loads, lines) if "loss" in row]


def queries_per_prompt(objective: str, K: int) -> int:
    return K - 1 if LOSSES[objective].sampling == "nash-md" else K * (K - 1) // 2


@pytest.mark.parametrize("objective", LOSSES.names())
def test_every_objective_trains_with_exact_cost_accounting(tiny_dir, tmp_path, objective):
    tr = trainer(tiny_dir, tmp_path, objective=objective)
    before = [p.detach().clone() for p in tr.model.parameters()]
    tr.train()
    rows = metrics(tr)
    assert [r["step"] for r in rows] == [1, 2]
    last, K = rows[-1], 3
    assert last["rounds"] == 2 and last["samples"] == 2 * 2 * K
    assert last["queries"] == 2 * 2 * queries_per_prompt(objective, K)
    assert last["oracle_calls"] == 2 * 2 * K  # a reward function scores every response once
    assert last["tokens"] > 0 and 0 <= last["eos_rate"] <= 1
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    moved = any(not torch.equal(a, b) for a, b in zip(before, tr.model.parameters(), strict=True))
    assert moved
    # property 8: before the first update logp - logp_old = 0 exactly (jbond: vs the anchor,
    # which equals the policy at step 1 but is computed in its own pass)
    first = rows[0]
    if LOSSES[objective].sampling == "jbond":
        assert abs(first["objective/log_ratio_mean"]) < 1e-5
    else:
        assert first["objective/log_ratio_mean"] == 0 and first["objective/log_ratio_std"] == 0


def test_policy_equal_to_reference_logs_zero_kl(tiny_dir, tmp_path):
    tr = trainer(tiny_dir, tmp_path, objective="wind-squared", beta=0.1, max_steps=1)
    tr.train()
    assert abs(metrics(tr)[0]["objective/kl_ref"]) < 1e-5


def test_reference_is_not_built_when_the_objective_does_not_use_it(tiny_dir, tmp_path):
    for objective, kw in (("sppo", {}), ("bon-distill", {}), ("wind-kl", {"beta": 0.0})):
        tr = trainer(tiny_dir, tmp_path / objective, objective=objective, max_steps=1, **kw)
        assert tr.ref_model is None and not tr.use_ref
        tr.train()
        assert tr.round.logp_ref is None and "objective/kl_ref" not in metrics(tr)[0]
    assert trainer(tiny_dir, tmp_path / "dpo", objective="dpo").ref_model is not None


def token_logprob(model, prompt: list[int], response: list[int]) -> float:
    """Independent reference: one unpadded forward per response token (EOS included)."""
    total = 0.0
    with torch.no_grad():
        for t, token in enumerate(response):
            logits = model(input_ids=torch.tensor([prompt + response[:t]])).logits[0, -1]
            total += torch.log_softmax(logits.double(), -1)[token].item()
    return total


def test_optimized_loss_equals_compute_loss_on_an_independently_rebuilt_batch(tiny_dir, tmp_path):
    """Property 8: samples, preferences and log-probs rebuilt outside the trainer."""
    tr = trainer(tiny_dir, tmp_path, objective="wind-squared", beta=0.2, eta=2.0, max_steps=1)
    tr.train()
    rnd, logged = tr.round, metrics(tr)[0]["loss"]
    initial = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    logp = torch.tensor(
        [
            [token_logprob(initial, p, y) for y in ys]
            for p, ys in zip(rnd.prompt_ids, rnd.responses, strict=True)
        ],
        dtype=torch.float64,
    )
    texts = [[tok.decode(y, skip_special_tokens=True) for y in ys] for ys in rnd.responses]
    r = torch.tensor(count_a([PROMPTS[i] for i in rnd.prompt_index], texts), dtype=torch.float64)
    prefs = torch.sigmoid(r[:, :, None] - r[:, None, :])
    prefs[:, torch.eye(3, dtype=torch.bool)] = float("nan")
    batch = SampleBatch(logp, logp, logp, prefs)  # policy = sampler = reference at step 1
    expected = compute_loss("wind-squared", batch, eta=2.0, beta=0.2).loss.item()
    assert logged == pytest.approx(expected, rel=1e-4, abs=1e-6)


@pytest.fixture
def forward_log(monkeypatch):
    """Record every sequence log-prob forward: (which model, with grad?, rows)."""
    calls = []
    original = tokens.sequence_logprobs

    def spy(model, batch, temperature):
        calls.append((model, torch.is_grad_enabled(), batch["input_ids"].shape[0]))
        return original(model, batch, temperature)

    monkeypatch.setattr(tokens, "sequence_logprobs", spy)
    return calls


@pytest.mark.parametrize(
    ("extra", "grad", "old"),
    [({}, 1, 0), ({"prompts_per_round": 4, "steps_per_round": 2}, 2, 1)],
)
def test_forward_passes_per_round(tiny_dir, tmp_path, forward_log, extra, grad, old):
    """One policy forward with grad per minibatch, the reference once per round, and a no-grad
    policy pass only for the prompts the round's first optimizer step does not cover."""
    tr = trainer(tiny_dir, tmp_path, objective="wind-squared", beta=0.1, **extra)
    steps = tr.args.max_steps
    tr.train()
    rounds = steps // tr.args.steps_per_round
    policy = [c for c in forward_log if c[0] is tr.model]
    ref = [c for c in forward_log if c[0] is tr.ref_model]
    assert len(ref) == rounds and len(policy) == len(forward_log) - len(ref)
    assert sum(g for _, g, _ in policy) == grad * rounds
    no_grad = [rows for _, g, rows in policy if not g]
    assert len(no_grad) == old * rounds
    assert all(rows == 2 * 3 for rows in no_grad)  # only the second minibatch's 2 prompts


def test_jbond_anchor_is_an_ema_and_supplies_logp_old(tiny_dir, tmp_path):
    tr = trainer(tiny_dir, tmp_path, objective="jbond", gamma=0.25, max_steps=2)
    params = [p for p in tr.model.parameters() if p.requires_grad]
    theta0 = [p.detach().clone() for p in params]

    class Snap(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 1:  # inserted first: runs before the anchor's EMA step
                self.theta1 = [p.detach().clone() for p in params]

    snap = Snap()
    tr.callback_handler.callbacks.insert(0, snap)
    tr.train()
    # after step 1: a1 = 0.75 theta0 + 0.25 theta1; after step 2: a2 = 0.75 a1 + 0.25 theta2
    theta2 = [p.detach() for p in params]
    for a, t0, t1, t2 in zip(tr.anchor.shadow, theta0, snap.theta1, theta2, strict=True):
        a1 = 0.75 * t0 + 0.25 * t1
        torch.testing.assert_close(a, 0.75 * a1 + 0.25 * t2, atol=1e-7, rtol=1e-6)
    # round 2 (after one step) recorded logp_old under the anchor a1, not the policy theta1
    rnd = tr.round
    prompts = [p for p in rnd.prompt_ids for _ in range(3)]
    flat = [y for ys in rnd.responses for y in ys]
    with torch.no_grad():
        for p, t0, t1 in zip(params, theta0, snap.theta1, strict=True):
            p.copy_(0.75 * t0 + 0.25 * t1)
    anchor_lp = tokens.logprobs_no_grad(tr.model, prompts, flat, 1.0, tr.pad_id, 6).double()
    torch.testing.assert_close(rnd.logp_old.flatten(), anchor_lp, atol=1e-5, rtol=0)
    with torch.no_grad():
        for p, t1 in zip(params, snap.theta1, strict=True):
            p.copy_(t1)
    policy_lp = tokens.logprobs_no_grad(tr.model, prompts, flat, 1.0, tr.pad_id, 6).double()
    assert (rnd.logp_old.flatten() - policy_lp).abs().max() > 1e-4


def test_nash_md_queries_only_its_own_sample_against_the_mixture(tiny_dir, tmp_path):
    tr = trainer(tiny_dir, tmp_path, objective="nash-md", num_samples=4, max_steps=1)
    tr.train()
    known = ~torch.isnan(tr.round.prefs)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[0, 1:] = expected[1:, 0] = True
    assert torch.equal(known, expected.expand_as(known))


def test_truncated_responses_lose_every_comparison_with_a_complete_one(tiny_dir, tmp_path):
    tr = trainer(tiny_dir, tmp_path, truncated_responses="lose", max_new_tokens=3, max_steps=1)
    tr.train()
    rnd = tr.round
    cut = rnd.truncated
    lose = cut[:, :, None] & ~cut[:, None, :]
    assert torch.all(rnd.prefs[lose] == 0) and torch.all(rnd.prefs.transpose(1, 2)[lose] == 1)


def test_lora_trains_and_saves_only_the_adapter_with_the_base_as_reference(tiny_dir, tmp_path):
    from peft import LoraConfig

    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    tr = WINDTrainer(
        str(tiny_dir),
        args=config(tmp_path, objective="wind-squared", beta=0.1, learning_rate=1e-2),
        preference=count_a,
        train_dataset=PROMPTS,
        peft_config=lora,
    )
    assert tr.ref_model is None and tr.use_ref
    base = {n: p.detach().clone() for n, p in tr.model.named_parameters() if "lora" not in n}
    tr.train()
    assert abs(metrics(tr)[0]["objective/kl_ref"]) < 1e-5  # the adapter starts as a no-op
    for name, p in tr.model.named_parameters():
        if "lora" not in name:
            assert torch.equal(p, base[name]), name
    tr.save_model(str(tmp_path / "adapter"))
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    assert "model.safetensors" not in files


class Broken(PreferenceOracle):
    """An oracle that returns what it is told to."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def compare(self, prompts, responses, pairs):
        return self.make(len(prompts), len(responses[0]))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda B, K: torch.full((B, K), 0.5), r"oracle 'broken' returned shape \(2, 3\)"),
        (lambda B, K: torch.full((B, K, K), 1.5), r"P\[0, 0, 1\] = 1.5 for prompt"),
        (lambda B, K: torch.full((B, K, K), 0.9), r"not 1, for prompt"),
    ],
)
def test_a_bad_oracle_is_named_with_the_prompt(tiny_dir, tmp_path, make, match):
    oracle = Broken(make)
    oracle.name = "broken"
    tr = trainer(tiny_dir, tmp_path, preference=oracle, max_steps=1)
    with pytest.raises(ValueError, match=match):
        tr.train()


def test_a_reward_function_returning_nan_is_named(tiny_dir, tmp_path):
    def nan_reward(prompts, responses):
        return [[float("nan")] * len(rs) for rs in responses]

    tr = trainer(tiny_dir, tmp_path, preference=nan_reward, max_steps=1)
    with pytest.raises(ValueError, match="reward function 'nan_reward' returned nan"):
        tr.train()


@pytest.mark.parametrize(
    ("prompts", "match"),
    [
        ([], "are empty"),
        (["ok", ""], "prompt 1 of the list is empty"),
        (["ok", 3], "prompt 1 of the list is int"),
        ([{"text": "hi"}], "prompt 0 of the list is NoneType"),
        (["x" * 300], "has 3[0-9]{2} tokens, over max_prompt_length = 256"),
    ],
)
def test_bad_prompts_fail_before_the_model_loads(tmp_path, prompts, match):
    missing = tmp_path / "no-model"  # never loaded: the prompts are checked first
    tok = tiny_tokenizer()
    with pytest.raises(ValueError, match=match):
        WINDTrainer(
            str(missing),
            args=config(tmp_path),
            preference=count_a,
            train_dataset=prompts,
            processing_class=tok,
        )


def test_long_prompts_can_be_cut_from_the_left_with_a_warning(tiny_dir, tmp_path):
    with pytest.warns(UserWarning, match="kept only their last 40 tokens"):
        tr = trainer(
            tiny_dir,
            tmp_path,
            prompts=["y" * 100, "Hi."],
            max_prompt_length=40,
            prompt_truncation="left",
        )
    assert max(len(p) for p in tr.prompt_ids) == 40


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"objective": "wind-cubed"}, "objective = 'wind-cubed' is invalid"),
        ({"num_samples": 1}, "num_samples = 1 is invalid"),
        ({"objective": "jbond", "num_samples": 4}, "set num_samples: 3"),
        ({"objective": "dpo", "beta": 0.0}, "hyperparameter beta = 0.0 is invalid"),
        ({"objective": "dpo", "eta": 1.0}, "has no hyperparameter 'eta'"),
        ({"temperature": 0.0}, "temperature = 0.0 is invalid"),
        ({"prompt_column": ""}, "prompt_column = '' is invalid"),
        ({"prompts_per_round": 3}, "must be a multiple of the prompts per optimizer step"),
        ({"prompts_per_round": 4, "steps_per_round": 3}, "multiple of the round's 2 minibatches"),
    ],
)
def test_bad_config_fails_on_creation(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        config(tmp_path, **kw)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tiny_dir, tmp_path):
    tr = trainer(tiny_dir, tmp_path, max_steps=3, save_strategy="steps", save_steps=1, beta=0.0)

    class Explode(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 2:
                tr.hp["eta"] = 1e308  # c (o - 1/2) overflows the square: an infinite loss

    tr.add_callback(Explode())
    with pytest.raises(NonFiniteLossError, match="loss became inf at optimizer step 3"):
        tr.train()
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert is_complete(checkpoint) and not (tmp_path / "run" / "checkpoint-3").exists()
    saved = AutoModelForCausalLM.from_pretrained(checkpoint)
    for a, b in zip(saved.parameters(), tr.model.parameters(), strict=True):
        assert torch.equal(a, b)  # no update after the bad step


def test_tokenizer_without_pad_token_and_several_eos_ids(tmp_path):
    from tiny import save_tiny

    folder = save_tiny(tmp_path / "nopad", pad=False)
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.pad_token is None
    tr = WINDTrainer(
        str(folder), args=config(tmp_path, max_steps=1), preference=count_a, train_dataset=PROMPTS
    )
    end = tok.convert_tokens_to_ids("<|end|>")
    assert tr.pad_id == tok.eos_token_id and set(tr.eos_ids) == {tok.eos_token_id, end}
    tr.train()
    for ys, cut in zip(tr.round.responses, tr.round.truncated.tolist(), strict=True):
        for y, t in zip(ys, cut, strict=True):
            ends = [i for i, token in enumerate(y) if token in tr.eos_ids]
            assert ends == ([] if t else [len(y) - 1])  # one EOS, the last token, kept


def test_jbond_with_lora_keeps_an_ema_of_the_adapter_only(tiny_dir, tmp_path):
    from peft import LoraConfig

    lora = LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")
    tr = WINDTrainer(
        str(tiny_dir),
        args=config(tmp_path, objective="jbond", gamma=0.5),
        preference=count_a,
        train_dataset=PROMPTS,
        peft_config=lora,
    )
    trainable = [n for n, p in tr.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)
    assert len(tr.anchor.shadow) == len(trainable)
    tr.train()
    assert metrics(tr)[-1]["rounds"] == 2


def _mean_log_ratio(model_a, model_b, prompts, responses, pad) -> float:
    """Mean of log a(y) - log b(y) over (prompt, response) pairs: > 0 when y ~ a, < 0 when y ~ b
    (E_a[log a - log b] = KL(a || b) >= 0)."""
    a = tokens.logprobs_no_grad(model_a, prompts, responses, 1.0, pad, 8)
    b = tokens.logprobs_no_grad(model_b, prompts, responses, 1.0, pad, 8)
    return (a - b).mean().item()


def test_nash_md_draws_its_opponents_from_the_mixture_with_the_reference(tiny_dir, tmp_path):
    """alpha = 1: the mixture is the reference itself; a reference far from the policy shows
    which model drew each sample."""
    tok = tiny_tokenizer()
    ref = tiny_model(tok, seed=123)
    with torch.no_grad():
        ref.lm_head.weight.mul_(40)  # a peaked reference, far from the near-uniform policy
    tr = WINDTrainer(
        str(tiny_dir),
        ref_model=ref,
        args=config(tmp_path, objective="nash-md", alpha=1.0, num_samples=4, max_steps=1,
                    per_device_train_batch_size=4, max_new_tokens=10),
        preference=count_a,
        train_dataset=PROMPTS,
    )  # fmt: skip
    tr.train()
    rnd, policy = tr.round, AutoModelForCausalLM.from_pretrained(tiny_dir)
    own = [(p, ys[0]) for p, ys in zip(rnd.prompt_ids, rnd.responses, strict=True)]
    opp = [(p, y) for p, ys in zip(rnd.prompt_ids, rnd.responses, strict=True) for y in ys[1:]]
    assert _mean_log_ratio(ref, policy, *zip(*opp, strict=True), tr.pad_id) > 1.0
    assert _mean_log_ratio(ref, policy, *zip(*own, strict=True), tr.pad_id) < -1.0


def test_jbond_draws_two_samples_from_the_anchor_and_one_from_the_policy(tiny_dir, tmp_path):
    """gamma tiny: the anchor stays at the initial model while one large SGD step moves the
    policy; round 2's samples 1, 2 must come from the anchor, sample 0 from the policy."""
    import copy

    tr = trainer(
        tiny_dir, tmp_path, objective="jbond", gamma=1e-6, max_steps=2, max_new_tokens=10,
        learning_rate=3.0, optim="sgd", max_grad_norm=0.0, per_device_train_batch_size=4,
    )  # fmt: skip

    class Snap(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 1:  # the policy that samples round 2
                self.policy = copy.deepcopy(tr.model)

    snap = Snap()
    tr.add_callback(snap)
    tr.train()
    rnd, initial = tr.round, AutoModelForCausalLM.from_pretrained(tiny_dir)
    own = [(p, ys[0]) for p, ys in zip(rnd.prompt_ids, rnd.responses, strict=True)]
    anchor = [(p, y) for p, ys in zip(rnd.prompt_ids, rnd.responses, strict=True) for y in ys[1:]]
    assert _mean_log_ratio(initial, snap.policy, *zip(*anchor, strict=True), tr.pad_id) > 0.5
    assert _mean_log_ratio(initial, snap.policy, *zip(*own, strict=True), tr.pad_id) < -0.5


def test_every_row_of_a_round_records_log_pi_t_of_its_start(tiny_dir, tmp_path):
    """Two minibatches, two steps: the first step records its rows as logp.detach(), the no-grad
    pass the others; all equal log pi_t (the weights at the round's start), at temperature 0.7."""
    tr = trainer(tiny_dir, tmp_path, prompts_per_round=4, steps_per_round=2, max_steps=2,
                 temperature=0.7, beta=0.1)  # fmt: skip
    tr.train()
    rnd, initial = tr.round, AutoModelForCausalLM.from_pretrained(tiny_dir)
    prompts = [p for p in rnd.prompt_ids for _ in range(3)]
    flat = [y for ys in rnd.responses for y in ys]
    want = tokens.logprobs_no_grad(initial, prompts, flat, 0.7, tr.pad_id, 4).double()
    torch.testing.assert_close(rnd.logp_old.flatten(), want, atol=1e-5, rtol=0)
    torch.testing.assert_close(rnd.logp_ref.flatten(), want, atol=1e-5, rtol=0)
    rows = metrics(tr)
    assert rows[1]["objective/log_ratio_std"] > 0  # step 2 sees the moved policy
    assert rows[-1]["tokens"] == sum(len(y) for y in flat)


def test_reference_and_sampler_keep_their_roles_with_a_distinct_reference(tiny_dir, tmp_path):
    tok = tiny_tokenizer()
    ref = tiny_model(tok, seed=77)
    with torch.no_grad():
        ref.lm_head.weight.mul_(5)
    tr = WINDTrainer(
        str(tiny_dir), ref_model=ref, preference=count_a, train_dataset=PROMPTS,
        args=config(tmp_path, objective="wind-squared", beta=0.25, eta=2.0, max_steps=1,
                    temperature=0.7),
    )  # fmt: skip
    tr.train()
    rnd, initial = tr.round, AutoModelForCausalLM.from_pretrained(tiny_dir)
    prompts = [p for p in rnd.prompt_ids for _ in range(3)]
    flat = [y for ys in rnd.responses for y in ys]
    lp = {
        name: tokens.logprobs_no_grad(m, prompts, flat, 0.7, tr.pad_id, 6).double().view(-1, 3)
        for name, m in (("policy", initial), ("ref", ref))
    }
    torch.testing.assert_close(rnd.logp_ref, lp["ref"], atol=1e-5, rtol=0)
    batch = SampleBatch(lp["policy"], lp["policy"], lp["ref"], rnd.prefs)
    # lam = eta beta / (1 + eta beta) = 1/3: a swap of logp_old and logp_ref changes the loss
    expected = compute_loss("wind-squared", batch, eta=2.0, beta=0.25).loss.item()
    assert metrics(tr)[0]["loss"] == pytest.approx(expected, rel=1e-4)


def test_round_samples_are_a_function_of_seed_round_and_process_only(tiny_dir, tmp_path):
    tr = trainer(tiny_dir, tmp_path)
    torch.manual_seed(1)
    first = tr.rollout_round(0).responses
    torch.manual_seed(2)
    state = torch.get_rng_state()
    assert tr.rollout_round(0).responses == first
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    assert tr.rollout_round(1).responses != first


def test_each_data_epoch_is_a_new_permutation(tiny_dir, tmp_path):
    tr = trainer(tiny_dir, tmp_path)  # 8 prompts, 2 per round: 4 rounds per data epoch
    epochs = [[i for r in range(e * 4, e * 4 + 4) for i in tr.round_prompts(r)] for e in (0, 1)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(len(PROMPTS)))
    assert epochs[0] != epochs[1]


def test_nash_md_without_mixing_or_reference_samples_from_the_policy(tiny_dir, tmp_path):
    tr = trainer(tiny_dir, tmp_path, objective="nash-md", alpha=0.0, beta=0.0, max_steps=1)
    assert tr.ref_model is None
    tr.train()
    assert metrics(tr)[0]["queries"] == 2 * 2


def test_disable_dropout_makes_the_policy_deterministic_in_train_mode(tmp_path):
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=4)
    for module in model.modules():  # Llama's attention dropout is functional, set per module
        if hasattr(module, "attention_dropout"):
            module.attention_dropout = 0.5
    tr = WINDTrainer(model, args=config(tmp_path), preference=count_a, train_dataset=PROMPTS,
                     processing_class=tok)  # fmt: skip
    tr.model.train()
    ids = torch.tensor([tr.prompt_ids[0]])
    a, b = (tr.model(input_ids=ids).logits for _ in range(2))
    assert torch.equal(a, b)


def test_lora_reference_is_the_base_model_after_the_adapter_moved(tiny_dir, tmp_path):
    """Round 2 (after one update of the adapter): log pi_ref is the base model's, not the
    policy's (the mutation 'adapter left on for the reference' passes round 1, where the fresh
    adapter is a no-op, and fails here)."""
    from peft import LoraConfig

    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    tr = WINDTrainer(
        str(tiny_dir),
        args=config(tmp_path, objective="wind-squared", beta=0.1, learning_rate=5e-2),
        preference=count_a,
        train_dataset=PROMPTS,
        peft_config=lora,
    )
    tr.train()
    rnd = tr.round
    assert rnd.index == 1  # the second round, sampled after the first update
    K = tr.args.num_samples
    flat_p = [p for p in rnd.prompt_ids for _ in range(K)]
    flat_r = [y for ys in rnd.responses for y in ys]
    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    expect = tokens.logprobs_no_grad(base, flat_p, flat_r, tr.args.temperature, tr.pad_id, 64)
    policy = tokens.logprobs_no_grad(tr.model, flat_p, flat_r, tr.args.temperature, tr.pad_id, 64)
    assert (policy - expect).abs().max() > 1e-3  # the adapter did move
    torch.testing.assert_close(rnd.logp_ref.flatten(), expect, atol=1e-5, rtol=0)


def test_a_kill_while_writing_the_state_leaves_the_checkpoint_unmarked(
    tiny_dir, tmp_path, monkeypatch
):
    """The completion marker is written after the WIND state file, and rotation only after the
    marker: a save that dies writing the state leaves that checkpoint incomplete and the
    previous complete one in place (save_total_limit = 1)."""
    from windalign.llm import resume

    real_save = resume.torch.save

    def dying_save(obj, path, *a, **kw):
        if "checkpoint-2" in str(path) and Path(str(path)).name.startswith("windalign_state"):
            raise RuntimeError("killed while writing the state")  # Trainer's own files are saved
        return real_save(obj, path, *a, **kw)

    monkeypatch.setattr(resume.torch, "save", dying_save)
    tr = trainer(
        tiny_dir, tmp_path, max_steps=3, save_strategy="steps", save_steps=1, save_total_limit=1
    )
    with pytest.raises(RuntimeError, match="killed while writing the state"):
        tr.train()
    run = tmp_path / "run"
    assert is_complete(run / "checkpoint-1")
    assert not is_complete(run / "checkpoint-2")


@pytest.mark.parametrize("objective", ["wind-squared", "sppo"])
def test_one_prompt_per_micro_batch_takes_the_same_optimizer_step(tiny_dir, tmp_path, objective):
    """Issue 17's padding remedy for long responses: ``per_device_train_batch_size: 1`` with
    ``gradient_accumulation_steps: 2`` runs each prompt in its own micro-batch (padded to its own
    responses only) and takes the same step as both prompts in one micro-batch: the same rounds
    (sampling does not depend on the micro-batch), the loss averaged over the same prompts. SGD
    without clipping, so a step of another size (a sum where a mean belongs) shows."""
    runs = {}
    for name, (micro, accumulate) in {"one": (2, 1), "each": (1, 2)}.items():
        tr = trainer(tiny_dir, tmp_path / name, objective=objective, max_steps=2,
                     per_device_train_batch_size=micro, gradient_accumulation_steps=accumulate,
                     max_grad_norm=0.0, prompts_per_round=2, optim="sgd")  # fmt: skip
        tr.train()
        runs[name] = (metrics(tr), [p.detach().clone() for p in tr.model.parameters()])
    (one, one_params), (each, each_params) = runs["one"], runs["each"]
    assert [r["samples"] for r in one] == [r["samples"] for r in each]
    for a, b in zip(one, each, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)
    for a, b in zip(one_params, each_params, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
