"""Model-based oracles on tiny models built in the test: reward model, reward sum, LM judge."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_model, tiny_reward_model, tiny_tokenizer

from windalign.preferences import (
    ORACLES,
    ModelJudge,
    PairwiseJudge,
    RewardModelOracle,
    RewardSum,
    as_oracle,
)
from windalign.preferences.judge import JUDGE_TEMPLATE, scheme_pairs

PROMPTS = ["Name a fruit.", "Say hi."]
RESPONSES = [["An apple.", "Apple", "no"], ["Hi!", "Hello there.", ""]]


@pytest.fixture(scope="module")
def reward_model():
    tok = tiny_tokenizer()
    return tiny_reward_model(tok).eval(), tok


def test_reward_model_is_bradley_terry_over_its_own_chat_format(reward_model):
    model, tok = reward_model
    oracle = RewardModelOracle(model, tok, temperature=0.5, batch_size=4)
    P = oracle(PROMPTS, RESPONSES)
    # independent: score each (prompt, response) alone, unpadded, in the scorer's chat format
    scores = []
    for p, rs in zip(PROMPTS, RESPONSES, strict=True):
        row = []
        for r in rs:
            chat = [{"role": "user", "content": p}, {"role": "assistant", "content": r}]
            ids = tok(tok.apply_chat_template(chat, tokenize=False), add_special_tokens=False)
            with torch.no_grad():
                row.append(model(input_ids=torch.tensor([ids["input_ids"]])).logits[0, 0].item())
        scores.append(row)
    r = torch.tensor(scores, dtype=torch.float64) / 0.5
    expected = torch.sigmoid(r[:, :, None] - r[:, None, :])
    off = ~torch.eye(3, dtype=torch.bool).expand(2, 3, 3)
    torch.testing.assert_close(P[off], expected[off], atol=1e-5, rtol=0)
    assert oracle.counters.calls == 6 and oracle.counters.queries == 6


def test_reward_model_with_several_labels_is_refused(reward_model):
    model, tok = reward_model
    model.config.num_labels = 2
    try:
        with pytest.raises(ValueError, match="num_labels = 2"):
            RewardModelOracle(model, tok)
    finally:
        model.config.num_labels = 1


def test_reward_sum_adds_bradley_terry_logits():
    def length(p, r):
        return [[float(len(y)) for y in ys] for ys in r]

    def bangs(p, r):
        return [[float(y.count("!")) for y in ys] for ys in r]

    both = RewardSum([(0.5, length), (3.0, bangs)])
    P = both(["x"], [["ab!", "abcd"]])
    assert P[0, 0, 1].item() == pytest.approx(torch.sigmoid(torch.tensor(0.5 * -1 + 3.0)).item())
    assert both.counters.calls == 4  # two sources, two responses each


class Biased(PairwiseJudge):
    """Prefers the longer response; says "first" 0.3 more often than it should (position bias)."""

    def judge(self, items):
        self.counters.calls += len(items)
        return [min(1.0, (0.7 if len(a) > len(b) else 0.2) + 0.3) for _, a, b in items]


def test_pairwise_judge_averages_both_orders_and_restricts_pairs():
    P = Biased()(["x"], [["aaa", "a"]])
    # p(a, b) = 1.0, p(b, a) = 0.5  ->  (1.0 + 1 - 0.5) / 2
    assert P[0, 0, 1].item() == pytest.approx(0.75) and P[0, 1, 0].item() == pytest.approx(0.25)
    judge = Biased(pairs="cycle")
    P = judge(["x"], [["a", "bb", "ccc", "dddd", "eeeee"]])
    assert judge.counters.queries == 5 and judge.counters.calls == 10
    assert (~torch.isnan(P[0])).sum() == 10
    assert len(scheme_pairs(6, "random", __import__("numpy").random.default_rng(1))) == 6


class Flaky(PairwiseJudge):
    def judge(self, items):
        return [None if "bad" in a + b else 1.0 for _, a, b in items]


def test_a_skipped_comparison_is_nan_and_counted_never_one_half():
    judge = Flaky()
    P = judge(["x"], [["ok", "fine", "bad"]])
    assert torch.isnan(P[0, 0, 2]) and torch.isnan(P[0, 2, 1]) and not torch.isnan(P[0, 0, 1])
    assert judge.counters.skipped == 2 and judge.counters.queries == 1


def test_model_judge_reads_the_answer_tokens_in_both_orders():
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=5).eval()
    judge = ModelJudge(model, tok, batch_size=3)
    P = judge(PROMPTS[:1], [RESPONSES[0]])
    a, b = (tok.convert_tokens_to_ids(t) for t in ("A", "B"))

    def p_first(prompt, first, second):
        text = JUDGE_TEMPLATE.format(prompt=prompt, first=first, second=second)
        chat = [{"role": "user", "content": text}]
        ids = tok(
            tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True),
            add_special_tokens=False,
        )["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1, [a, b]].double()
        return torch.softmax(logits, -1)[0].item()

    r = RESPONSES[0]
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        want = (p_first(PROMPTS[0], r[i], r[j]) + 1 - p_first(PROMPTS[0], r[j], r[i])) / 2
        assert P[0, i, j].item() == pytest.approx(want, abs=1e-5)
    assert judge.counters.calls == 6 and judge.counters.queries == 3


def test_registry_builds_the_model_oracles(reward_model, tmp_path):
    model, tok = reward_model
    model.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    oracle = as_oracle("reward-model", model=str(tmp_path / "rm"))
    assert isinstance(oracle, RewardModelOracle) and "judge" in ORACLES
    assert oracle(["x"], [["a", "b"]]).shape == (1, 2, 2)
