"""The OpenAI-compatible HTTP judge against a real HTTP server started inside the test.

:class:`FakeJudgeServer` implements ``/v1/chat/completions`` on 127.0.0.1 (port 0) and answers
like a judge that prefers the longer response: with logprobs, ``P(A) = sigmoid(scale * (len(A) -
len(B)) + bias)`` where ``bias`` is a position bias toward "A"; without, the text "A" or "B" (ties:
"A"). Faults are injected per test: ``script`` (actions for the next requests, in order),
``poison`` (an action for every request whose responses contain a substring) and ``fault`` (the
action for every other request). ``GET /v1/models`` lists ``models`` (``None``: 404, ``"error"``:
500). The real ``openai`` client talks to it: nothing is mocked at the client level.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import re
import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

pytest.importorskip("openai")

from windalign.preferences import ORACLES, as_oracle
from windalign.preferences.http import CACHE_FILE, HTTPJudge, JudgeError

ASKED = re.compile(r"Response A:\n(.*?)\n\nResponse B:\n(.*?)\n\nAnswer with", re.DOTALL)
FAST = {"backoff": 0.01, "max_wait": 5.0, "timeout": 5.0, "api_key_env": None}


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


class Handler(BaseHTTPRequestHandler):
    """One chat completion per POST; the server's state decides the answer or the fault."""

    server: FakeJudgeServer

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (timeout) and closed the connection
            pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        first, second = ASKED.search(body["messages"][0]["content"]).groups()
        action = self.server.record(body, self.headers.get("Authorization", ""), first, second)
        kind = action[0] if action else "answer"
        if self.path != "/v1/chat/completions":
            kind, action = "status", ("status", 404, {})
        if kind == "late":  # ("late", seconds, action): the action after a delay
            time.sleep(action[1])
            kind, action = action[2][0], action[2]
        if kind == "sleep":
            time.sleep(action[1])
        elif kind == "status":
            echo = f"no; you sent {self.headers.get('Authorization')}"  # a careless server
            error = json.dumps({"error": {"message": echo, "type": "fault"}}).encode()
            return self.send(action[1], error, action[2])
        elif kind == "garbage":
            return self.send(200, b'{"choices": [{"message": {"content": "A"')
        elif kind == "top":
            return self.send(200, self.server.completion(action[2], action[1]))
        self.send(200, self.server.answer(first, second))

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.gets += 1
        listed = self.server.models
        if self.path != "/v1/models" or listed is None:
            return self.send(404, b'{"error": {"message": "Not Found", "type": "not_found"}}')
        if listed == "error":
            return self.send(500, b'{"error": {"message": "boom", "type": "server_error"}}')
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in listed]
        self.send(200, json.dumps({"object": "list", "data": data}).encode())


class FakeJudgeServer(ThreadingHTTPServer):
    """A judge preferring the longer response, with a position bias and injectable faults."""

    daemon_threads = True

    def __init__(self, logprobs: bool = True, bias: float = 0.0, scale: float = 0.5) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.logprobs, self.bias, self.scale = logprobs, bias, scale
        self.lock = threading.Lock()
        self.requests, self.auth, self.bodies, self.gets = 0, [], [], 0
        self.script: list[tuple] = []
        self.poison: dict[str, tuple] = {}
        self.fault: tuple | None = None
        self.models: list[str] | str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/v1"

    def record(self, body: dict, auth: str, first: str, second: str) -> tuple | None:
        """Count the request; the fault to inject, if any."""
        with self.lock:
            self.requests += 1
            self.auth.append(auth)
            self.bodies.append(body)
            if self.script:
                return self.script.pop(0)
        return next((a for s, a in self.poison.items() if s in first or s in second), self.fault)

    def p_first(self, first: str, second: str) -> float:
        """What the server answers for one order: the biased P("A")."""
        return sigmoid(self.scale * (len(first) - len(second)) + self.bias)

    def answer(self, first: str, second: str) -> bytes:
        if not self.logprobs:
            return self.completion("A" if len(first) >= len(second) else "B", None)
        p = self.p_first(first, second)
        top = [("A", math.log(p)), (" B", math.log1p(-p)), ("The", -9.0)]
        return self.completion("A" if p >= 0.5 else "B", top)

    @staticmethod
    def completion(content: str, top: list[tuple[str, float]] | None) -> bytes:
        choice = {"index": 0, "finish_reason": "length", "logprobs": None}
        choice["message"] = {"role": "assistant", "content": content}
        if top is not None:
            tops = [{"token": t, "logprob": lp, "bytes": None} for t, lp in top]
            step = {"token": content, "logprob": top[0][1], "bytes": None, "top_logprobs": tops}
            choice["logprobs"] = {"content": [step]}
        reply = {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": "fake"}
        reply["choices"] = [choice]
        return json.dumps(reply).encode()


@pytest.fixture
def server():
    srv = FakeJudgeServer()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def expected(srv: FakeJudgeServer, responses: list[str]) -> torch.Tensor:
    """The averaged preference: (p(a, b) + 1 - p(b, a)) / 2, NaN diagonal."""
    K = len(responses)
    P = torch.full((K, K), float("nan"), dtype=torch.float64)
    for i in range(K):
        for j in range(K):
            if i != j:
                a, b = responses[i], responses[j]
                P[i, j] = (srv.p_first(a, b) + 1 - srv.p_first(b, a)) / 2
    return P


RESPONSES = ["a", "abc", "abcdef", "xyz"]


def test_logprobs_give_the_rule_and_the_position_bias_averages_out(server):
    server.bias = 1.0  # the server prefers "A" by a logit of 1
    judge = HTTPJudge(server.url, "fake-judge", **FAST)
    P = judge(["Say hi.", "Count."], [RESPONSES, RESPONSES[::-1]])
    d = 0.5 * (len("abc") - len("a"))
    assert P[0, 1, 0].item() == pytest.approx((sigmoid(d + 1) + sigmoid(d - 1)) / 2, abs=1e-12)
    torch.testing.assert_close(P[0], expected(server, RESPONSES), equal_nan=True)
    torch.testing.assert_close(P[1], expected(server, RESPONSES[::-1]), equal_nan=True)
    # unbiased: ties are exactly 1/2 although the server says "A" first with p = sigmoid(1)
    assert P[0, 1, 3].item() == pytest.approx(0.5, abs=1e-12) and server.p_first("abc", "xyz") > 0.7
    off = ~torch.eye(4, dtype=torch.bool)
    torch.testing.assert_close((P[0] + P[0].T)[off], torch.ones(12, dtype=torch.float64))
    assert judge.counters.queries == 12 and judge.counters.calls == 24 == server.requests
    body = server.bodies[0]
    assert (body["logprobs"], body["top_logprobs"], body["max_tokens"]) == (True, 5, 1)
    assert body["temperature"] == 0 and body["model"] == "fake-judge"


def test_the_answer_text_is_read_when_the_server_sends_no_logprobs(server):
    server.logprobs = False
    P = HTTPJudge(server.url, "m", pairs="cycle", **FAST)(["q"], [["a", "abc", "xyz", "abcdef"]])[0]
    assert P[1, 0] == 1.0 and P[3, 2] == 1.0 and P[0, 3] == 0.0
    assert P[1, 2] == 0.5  # a tie: the server says "A" in both orders, averaged to 1/2
    assert torch.isnan(P[0, 2]) and torch.isnan(P[1, 3])  # not in the cycle


def test_one_answer_token_among_the_top_logprobs_counts_the_other_as_zero(server):
    server.poison = {"only": ("top", [("Sure", -0.1), (" A", -2.0)], "Sure")}
    P = HTTPJudge(server.url, "m", **FAST)(["q"], [["only", "other"]])[0]
    assert P[0, 1] == 0.5  # A in both orders: p = 1 and 1, averaged (1 + 1 - 1) / 2


def test_500s_are_retried_and_every_request_is_a_call(server):
    server.script = [("status", 500, {}), ("status", 503, {})]
    judge = HTTPJudge(server.url, "m", max_retries=3, concurrency=1, **FAST)
    P = judge(["q"], [["a", "abc"]])[0]
    assert P[1, 0].item() == pytest.approx(expected(server, ["a", "abc"])[1, 0].item())
    assert judge.counters.calls == 4 == server.requests and judge.counters.skipped == 0


def test_429_waits_for_retry_after_capped_at_max_wait(server):
    server.script = [("status", 429, {"Retry-After": "0.4"})]
    judge = HTTPJudge(server.url, "m", concurrency=1, **FAST)
    start = time.perf_counter()
    judge(["q"], [["a", "abc"]])
    assert time.perf_counter() - start >= 0.4 and judge.counters.calls == 3
    server.script = [("status", 429, {"Retry-After": "60"})]
    capped = HTTPJudge(server.url, "m", concurrency=1, **{**FAST, "max_wait": 0.1})
    start = time.perf_counter()
    capped(["q"], [["a", "abcd"]])
    assert time.perf_counter() - start < 3 and capped.counters.calls == 3


def test_slow_answers_time_out_after_the_retries(server):
    server.poison = {"slow": ("sleep", 1.5)}
    opts = {**FAST, "timeout": 0.25, "max_retries": 1}
    with pytest.raises(JudgeError, match=re.escape(server.url) + r".*timeout.*after 2 attempt"):
        HTTPJudge(server.url, "m", **opts)(["q"], [["a", "slow"]])
    judge = HTTPJudge(server.url, "m", on_error="skip", **opts)
    P = judge(["q"], [["a", "bb", "slow"]])[0]
    assert not torch.isnan(P[0, 1]) and torch.isnan(P[:, 2]).all() and torch.isnan(P[2]).all()
    assert judge.counters.skipped == 2 and judge.counters.queries == 1
    assert judge.counters.calls == 2 + 4 * 2  # the two slow pairs: 2 orders x 2 attempts


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        (("status", 500, {}), r"HTTP 500 .* after 3 attempt.*failing or overloaded"),
        (("garbage",), r"malformed response \(.JSONDecodeError"),
        (("top", [("maybe", -0.1)], "maybe"), r"the answer 'maybe' is neither A nor B"),
    ],
)
def test_failures_raise_naming_the_url_or_leave_exactly_those_pairs_nan(server, fault, match):
    server.poison = {"bad": fault}
    with pytest.raises(
        JudgeError, match=re.escape(server.url + "/chat/completions") + ".*" + match
    ):
        HTTPJudge(server.url, "m", max_retries=2, **FAST)(["q"], [["a", "bad"]])
    judge = HTTPJudge(server.url, "m", on_error="skip", max_retries=2, **FAST)
    P = judge(["q", "r"], [["a", "bad", "abc"], ["a", "bb", "ccc"]])
    assert torch.isnan(P[0, 1]).all() and torch.isnan(P[0, :, 1]).all()
    assert not torch.isnan(P[0, 0, 2]) and (~torch.isnan(P[1])).sum() == 6
    assert judge.counters.skipped == 2 and judge.counters.queries == 4


def test_no_request_is_retried_or_sent_once_the_judge_raises(server):
    # every request fails: the "bad" pairs with a 400 after 0.2 s (not retried: the judge raises),
    # the others at once with a 500 (retried every 0.3 s, up to 20 times, without the stop)
    server.poison = {"bad": ("late", 0.2, ("status", 400, {}))}
    server.fault = ("status", 500, {})
    opts = {**FAST, "backoff": 0.3, "max_wait": 0.3}
    judge = HTTPJudge(server.url, "m", concurrency=6, max_retries=20, **opts)
    with pytest.raises(JudgeError, match="HTTP 400"):
        judge(["q"], [["a", "b", "bad"]])
    sent = judge.counters.calls
    time.sleep(1.0)
    assert server.requests == judge.counters.calls == sent  # no retry after the error


def test_the_cost_is_counted_when_the_judge_raises(server, tmp_path):
    server.poison = {"bad": ("status", 500, {})}
    opts = {**FAST, "cache_dir": tmp_path}
    judge = HTTPJudge(server.url, "m", concurrency=1, max_retries=1, **opts)
    with pytest.raises(JudgeError, match="HTTP 500"):
        judge(["q"], [["a", "abc", "bad"]])
    # (a, abc) was answered in both orders, then (a, bad) failed twice; (bad, a) may be in flight
    assert judge.counters.queries == 1 and judge.counters.seconds > 0
    assert judge.counters.calls in (4, 5) and judge.counters.skipped == 0
    seconds = judge.counters.seconds
    judge(["q"], [["a", "abc"]])  # the answers paid for before the error were cached
    assert judge.counters.cache_hits == 2 and judge.counters.queries == 2
    assert judge.counters.seconds > seconds
    server.fault = ("status", 503, {})  # a server that fails every request
    failing = HTTPJudge(server.url, "m", max_retries=2, **FAST)
    with pytest.raises(JudgeError, match="HTTP 503"):
        failing(["q", "r"], [["x", "y"], ["z", "w"]])
    assert failing.counters.calls >= 3 and failing.counters.seconds > 0
    assert failing.counters.queries == 0


def test_a_model_the_server_does_not_list_is_one_error_before_any_request(server):
    server.models = ["judge-7b", "judge-1b"]
    judge = HTTPJudge(server.url, "judge-13b", on_error="skip", **FAST)
    listing = r"does not list model 'judge-13b'; the server serves 'judge-7b', 'judge-1b'"
    with pytest.raises(JudgeError, match=listing) as err:
        judge(["q"], [["a", "b"]])
    assert "\n" not in str(err.value) and judge.counters.seconds > 0
    assert server.requests == 0 and judge.counters.calls == 0 and server.gets == 1
    server.models = [f"other-{n}" for n in range(14)]  # a long list: the first 10 are named
    with pytest.raises(JudgeError, match=r"'other-9' and 4 more: pass model=") as err:
        judge(["q"], [["a", "b"]])
    assert "\n" not in str(err.value) and "'other-10'" not in str(err.value)
    server.models = ["judge-7b", "judge-1b"]
    listed = HTTPJudge(server.url, "judge-7b", **FAST)
    listed(["q"], [["a", "b"]])
    listed(["q"], [["a", "c"]])
    assert server.requests == 4 and server.gets == 3  # the listed model: checked once


@pytest.mark.parametrize("models", [None, "error", []], ids=["404", "500", "empty"])
def test_the_model_check_is_skipped_where_the_server_lists_no_models(server, models):
    server.models = models  # llama.cpp-like: any name is answered
    judge = HTTPJudge(server.url, "any-name", **FAST)
    judge(["q"], [["a", "abc"]])
    judge(["q"], [["a", "abcd"]])
    assert server.requests == 4 == judge.counters.calls and server.gets == 1


def test_an_unreachable_endpoint_names_the_url():
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    judge = HTTPJudge(url, "m", max_retries=1, **FAST)
    with pytest.raises(JudgeError, match=re.escape(url) + r".*unreachable.*start the server"):
        judge(["q"], [["a", "b"]])
    assert judge.counters.calls >= 2
    skipping = HTTPJudge(url, "m", max_retries=0, on_error="skip", **FAST)
    assert torch.isnan(skipping(["q"], [["a", "b", "c"]])).all() and skipping.counters.skipped == 3


def test_a_wrong_path_raises_even_when_skipping(server):
    judge = HTTPJudge(server.url.removesuffix("/v1") + "/v2", "m", on_error="skip", **FAST)
    with pytest.raises(JudgeError, match=r"/v2/chat/completions.*HTTP 404.*check base_url"):
        judge(["q"], [["a", "b"]])


def test_the_cache_sends_no_request_twice_and_is_shared(server, tmp_path):
    judge = HTTPJudge(server.url, "m", cache_dir=tmp_path, **FAST)
    P = judge(["q"], [RESPONSES])
    assert server.requests == 12 and judge.counters.cache_hits == 0
    again = judge(["q"], [RESPONSES])
    torch.testing.assert_close(again, P, equal_nan=True)
    assert server.requests == 12 and judge.counters.cache_hits == 12 and judge.counters.calls == 12
    other = HTTPJudge(server.url, "m", cache_dir=tmp_path, **FAST)
    torch.testing.assert_close(other(["q"], [RESPONSES]), P, equal_nan=True)
    assert server.requests == 12 and other.counters.calls == 0 and other.counters.cache_hits == 12
    other(["q"], [[*RESPONSES, "new one"]])  # only the 4 new pairs, both orders, are asked
    assert server.requests == 20
    template = "{prompt}\n\nResponse A:\n{first}\n\nResponse B:\n{second}\n\nAnswer with A or B."
    HTTPJudge(server.url, "m", cache_dir=tmp_path, template=template, **FAST)(["q"], [["a", "abc"]])
    assert server.requests == 22  # another template is another key


def judge_in_a_process(url: str, cache_dir: str, offset: int) -> None:
    """Judge 6 prompts x 5 responses (half shared with the other process) into one cache."""
    prompts = [f"prompt {n}" for n in range(offset, offset + 6)]
    responses = [[f"p{n} " + "x" * k for k in range(5)] for n in range(offset, offset + 6)]
    HTTPJudge(url, "m", cache_dir=cache_dir, concurrency=4, **FAST)(prompts, responses)


def test_the_cache_is_written_by_two_processes_at_once(server, tmp_path):
    # fork (Linux) shares the parent's imports: a spawned child spends seconds importing torch
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    procs = [
        ctx.Process(target=judge_in_a_process, args=(server.url, str(tmp_path), offset))
        for offset in (0, 3)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0]
    with sqlite3.connect(tmp_path / CACHE_FILE) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT count(*) FROM judgments").fetchone() == (9 * 20,)
    sent = server.requests
    assert 9 * 20 <= sent <= 12 * 20  # the 3 shared prompts are asked once or twice
    judge = HTTPJudge(server.url, "m", cache_dir=tmp_path, **FAST)
    prompts = [f"prompt {n}" for n in range(9)]
    responses = [[f"p{n} " + "x" * k for k in range(5)] for n in range(9)]
    P = judge(prompts, responses)
    assert server.requests == sent and judge.counters.cache_hits == 9 * 20
    for b in range(9):
        torch.testing.assert_close(P[b], expected(server, responses[b]), equal_nan=True)


def test_the_api_key_is_sent_but_never_shown_or_stored(server, tmp_path, monkeypatch):
    secret = "sk-test-3f9a1c7e5b"
    monkeypatch.setenv("WINDALIGN_JUDGE_KEY", secret)
    opts = {**FAST, "api_key_env": "WINDALIGN_JUDGE_KEY", "cache_dir": tmp_path}
    judge = HTTPJudge(server.url, "m", **opts)
    judge(["q"], [["a", "abc"]])
    assert server.auth == [f"Bearer {secret}"] * 2
    assert secret not in repr(judge) and secret not in judge.name
    server.poison = {"bad": ("status", 401, {})}  # the server echoes the Authorization header
    with pytest.raises(JudgeError, match=r"HTTP 401.*\$WINDALIGN_JUDGE_KEY") as err:
        HTTPJudge(server.url, "m", on_error="skip", **opts)(["q"], [["a", "bad"]])
    assert secret not in str(err.value) and "***" in str(err.value)
    server.poison = {"bad": ("status", 500, {})}
    with pytest.raises(JudgeError) as err:
        HTTPJudge(server.url, "m", max_retries=0, **opts)(["q"], [["a", "bad"]])
    assert secret not in str(err.value)
    assert all(secret.encode() not in f.read_bytes() for f in tmp_path.iterdir())
    monkeypatch.delenv("WINDALIGN_JUDGE_KEY")
    with pytest.raises(
        ValueError, match=r"'WINDALIGN_JUDGE_KEY', which is not set.*api_key_env=None"
    ):
        HTTPJudge(server.url, "m", **opts)
    HTTPJudge(server.url, "m", **FAST)(["q"], [["a", "b"]])
    assert server.auth[-1] == "Bearer no-key"


def test_registered_as_http_judge(server):
    assert "http-judge" in ORACLES
    oracle = as_oracle("http-judge", base_url=server.url + "/", model="m", **FAST)
    assert isinstance(oracle, HTTPJudge) and oracle.name == f"http-judge(m@{server.url})"
    with pytest.raises(ValueError, match="on_error = 'ignore' is invalid"):
        HTTPJudge(server.url, "m", on_error="ignore", api_key_env=None)
