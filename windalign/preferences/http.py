"""An LLM judge behind any OpenAI-compatible ``/v1/chat/completions`` endpoint (THEORY.md 1, 8).

:class:`HTTPJudge` is a :class:`~windalign.preferences.judge.PairwiseJudge`: every queried pair is
asked in both orders (one query = two HTTP requests) and averaged to remove position bias. Each
ordered comparison is one chat request with :data:`~windalign.preferences.judge.JUDGE_TEMPLATE`
filled in, ``max_tokens=1`` and ``logprobs=True, top_logprobs=5``. When the server returns
logprobs, ``P(first better)`` is the softmax of the answer tokens ``A`` and ``B`` among the top
logprobs (:func:`probability_from_logprobs`); otherwise the answer text is read
(:func:`probability_from_text`). vLLM, the llama.cpp server and OpenAI all speak this protocol.

Reliability: the judge (not the ``openai`` client, whose own retries are off) retries 408, 429,
5xx, timeouts and connection errors with exponential backoff, honouring ``Retry-After`` on 429 up
to ``max_wait`` seconds, and counts every chat request sent in ``counters.calls``. What is left
failing after the retries, and any answer that is neither ``A`` nor ``B``, raises a
:class:`JudgeError` naming the URL (``on_error="raise"``) or leaves that pair NaN and counts it in
``counters.skipped`` (``on_error="skip"``). Once the judge raises, requests still in flight finish
but are not retried and queued ones are never sent; ``counters`` keep the work done (calls,
seconds, and the queries answered in both orders before the error). A rejected key (401/403) or
a wrong URL (404) always raises: skipping would silently turn every pair into NaN.

A wrong model name depends on the server: OpenAI and vLLM answer 404 (which raises), but the
llama.cpp server serves one model under any name. So before its first request the judge asks
``GET {base_url}/models`` once: if the server lists models and ``model`` is not among them, it
raises a :class:`JudgeError` naming the model and the listed ones; if the endpoint is missing
(404) or fails, the check is skipped. That request is not counted in ``counters.calls``.

The API key is read from an environment variable (``api_key_env``) and handed to the ``openai``
client only: it is never logged, never in ``repr`` or errors, never written to the cache. The
optional on-disk cache (``cache_dir``) is one SQLite file in WAL mode, shared safely by threads,
judges and processes; it stores only a hash of the request and the probability.

The ``openai`` package is an optional extra: ``pip install 'windalign[judge]'``.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from windalign.preferences.judge import ANSWERS, JUDGE_TEMPLATE, PairwiseJudge
from windalign.preferences.protocol import Pairs

if TYPE_CHECKING:
    from collections.abc import Sequence

    from torch import Tensor

log = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")
#: HTTP statuses retried with backoff (besides timeouts and connection errors).
RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
#: Statuses that mean "misconfigured", not "this pair failed": they raise even with on_error=skip.
FATAL_STATUSES = frozenset({401, 403, 404})
CACHE_FILE = "judge-cache.sqlite"
#: Listed models named in the error for a model the server does not list (the rest are counted).
SHOW_MODELS = 10


class JudgeError(ValueError):
    """An HTTP judge request failed (after its retries) or the server answered garbage."""


def _short(text: object, n: int = 80) -> str:
    text = str(text)
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def probability_from_logprobs(top: Iterable[tuple[str, float]]) -> float | None:
    """``P(first better)`` from the ``(token, logprob)`` pairs of the answer's first position.

    Tokens are stripped of whitespace and matched exactly against ``A`` and ``B`` (variants such
    as ``"A"`` and ``" A"`` add up); the two are renormalized to sum to 1. If only one appears the
    other counts as 0; if neither does, ``None`` (read the answer text instead).

    >>> round(probability_from_logprobs([("A", math.log(0.6)), (" B", math.log(0.2))]), 6)
    0.75
    >>> probability_from_logprobs([("B", -0.1), ("maybe", -3.0)])
    0.0
    >>> probability_from_logprobs([("maybe", -0.1)]) is None
    True
    """
    found: dict[str, list[float]] = {a: [] for a in ANSWERS}
    for token, logprob in top:
        if token.strip() in found and math.isfinite(logprob):
            found[token.strip()].append(logprob)
    first, second = found[ANSWERS[0]], found[ANSWERS[1]]
    if not first and not second:
        return None
    if not second:
        return 1.0
    if not first:
        return 0.0
    m = max(first + second)
    mass_first = sum(math.exp(lp - m) for lp in first)
    mass_second = sum(math.exp(lp - m) for lp in second)
    return mass_first / (mass_first + mass_second)


def probability_from_text(text: str | None) -> float | None:
    """``1.0`` if the answer's first letter after stripping is ``A``, ``0.0`` if ``B``, else None.

    >>> probability_from_text(" a."), probability_from_text("B"), probability_from_text("maybe")
    (1.0, 0.0, None)
    """
    letter = (text or "").strip()[:1].upper()
    if letter == ANSWERS[0]:
        return 1.0
    if letter == ANSWERS[1]:
        return 0.0
    return None


def retry_after(headers: Mapping[str, str] | None, default: float, cap: float) -> float:
    """Seconds to wait before retrying: ``retry-after-ms`` or ``Retry-After`` (seconds or a date).

    Falls back to ``default`` when neither header is usable; never more than ``cap``.

    >>> retry_after({"retry-after": "2"}, 0.1, 30.0), retry_after({"retry-after": "99"}, 0.1, 30.0)
    (2.0, 30.0)
    >>> retry_after({"retry-after-ms": "250"}, 0.1, 30.0), retry_after({}, 0.1, 30.0)
    (0.25, 0.1)
    """
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    seconds = None
    try:
        if "retry-after-ms" in headers:
            seconds = float(headers["retry-after-ms"]) / 1000
        elif "retry-after" in headers:
            value = headers["retry-after"].strip()
            try:
                seconds = float(value)
            except ValueError:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        seconds = None
    if seconds is None or not math.isfinite(seconds):
        seconds = default
    return min(max(seconds, 0.0), cap)


def cache_key(model: str, template: str, prompt: str, first: str, second: str, **settings) -> str:
    """SHA-256 of an ordered comparison and the settings that change its answer (order matters).

    >>> cache_key("m", "t", "p", "a", "b") != cache_key("m", "t", "p", "b", "a")
    True
    """
    blob = json.dumps([model, template, prompt, first, second, sorted(settings.items())])
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    """``key -> P(first better)`` in one SQLite file (WAL, busy timeout): safe for many processes.

    Open one per thread (a connection is not shared); every write is its own transaction.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d, JudgeCache(d) as cache:
    ...     cache.put("k", 0.25)
    ...     cache.get(["k", "missing"])
    {'k': 0.25}
    """

    def __init__(self, cache_dir: str | os.PathLike, timeout: float = 60.0) -> None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(cache_dir) / CACHE_FILE
        self.con = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        self.con.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        self.con.execute("PRAGMA journal_mode = WAL")
        self.con.execute("PRAGMA synchronous = NORMAL")
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS judgments "
            "(key TEXT PRIMARY KEY, p REAL NOT NULL, created REAL NOT NULL)"
        )

    def get(self, keys: list[str]) -> dict[str, float]:
        """The cached probabilities of ``keys`` (missing and out-of-range values left out)."""
        found: dict[str, float] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self.con.execute(
                f"SELECT key, p FROM judgments WHERE key IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update({k: float(p) for k, p in rows if 0.0 <= p <= 1.0})
        return found

    def put(self, key: str, p: float) -> None:
        """Store (or replace) one probability."""
        self.con.execute(
            "INSERT OR REPLACE INTO judgments (key, p, created) VALUES (?, ?, ?)",
            (key, float(p), time.time()),
        )

    def close(self) -> None:
        """Close the connection."""
        self.con.close()

    def __enter__(self) -> JudgeCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Outcome:
    """One ordered comparison's result: a probability, or why it failed and how to fix it."""

    p: float | None
    error: str = ""
    fix: str = ""
    fatal: bool = False  # a misconfiguration: raised even with on_error="skip"


FIX_FAILING = "the server is failing or overloaded: raise timeout or max_retries, lower concurrency"
FIX_GARBAGE = "check that base_url serves an instruction-following chat model"


class HTTPJudge(PairwiseJudge):
    """A pairwise judge served at an OpenAI-compatible ``base_url`` (see the module docs).

    ``base_url`` (e.g. ``http://localhost:8000/v1``), ``model``: the served model name.
    ``api_key_env``: the environment variable holding the key; ``None`` for a server that needs
    none (a dummy key is sent). ``timeout``: seconds per request; ``max_retries``: retries after
    the first attempt; ``concurrency``: requests in flight at most; ``backoff``: the first retry
    waits ``backoff`` seconds, doubling each time, at most ``max_wait`` (also the cap on
    ``Retry-After``). ``cache_dir``: the response cache folder (``None``: no cache).
    ``on_error``: ``raise`` or ``skip``. ``logprobs=False`` for servers that reject the
    ``logprobs`` parameter (the answer text is then read). ``pairs``, ``seed``: the pair scheme.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 4,
        concurrency: int = 8,
        temperature: float = 0.0,
        cache_dir: str | os.PathLike | None = None,
        on_error: str = "raise",
        pairs: str = "all",
        seed: int = 0,
        template: str = JUDGE_TEMPLATE,
        backoff: float = 1.0,
        max_wait: float = 30.0,
        logprobs: bool = True,
    ) -> None:
        super().__init__(pairs=pairs, seed=seed)
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error = {on_error!r} is invalid; it must be one of {ON_ERROR}")
        if concurrency < 1 or max_retries < 0 or timeout <= 0 or backoff < 0 or max_wait < 0:
            raise ValueError(
                f"HTTPJudge needs concurrency >= 1, max_retries >= 0, timeout > 0, backoff >= 0 "
                f"and max_wait >= 0; got concurrency={concurrency}, max_retries={max_retries}, "
                f"timeout={timeout}, backoff={backoff}, max_wait={max_wait}"
            )
        missing = [f for f in ("prompt", "first", "second") if "{" + f + "}" not in template]
        if missing:
            raise ValueError(
                f"the judge template lacks the placeholder(s) {missing}; it must contain "
                "{prompt}, {first} and {second}"
            )
        self.base_url, self.model = base_url.rstrip("/"), model
        self.endpoint = f"{self.base_url}/chat/completions"
        self.name = f"http-judge({model}@{self.base_url})"
        self.api_key_env, self.timeout, self.max_retries = api_key_env, timeout, max_retries
        self.concurrency, self.temperature, self.on_error = concurrency, temperature, on_error
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.template, self.backoff, self.max_wait = template, backoff, max_wait
        self.logprobs = logprobs
        self._lock = threading.Lock()
        self._client = self._make_client()
        self._model_checked = False
        self._answered: list[float | None] = []  # this call's answers when judge() raised

    def _make_client(self) -> Any:
        try:
            import openai
        except ImportError:
            raise ImportError(
                "HTTPJudge needs the openai package; install it with "
                "pip install 'windalign[judge]' (or pip install 'openai>=1.40')"
            ) from None
        if self.api_key_env is None:
            key = "no-key"  # servers that need no key (vLLM, llama.cpp) still get a header
        else:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ValueError(
                    f"HTTPJudge for {self.endpoint} reads its API key from the environment "
                    f"variable {self.api_key_env!r}, which is not set; export "
                    f"{self.api_key_env}=<your key>, or pass api_key_env=None for a server that "
                    "needs no key (vLLM, llama.cpp)"
                )
        # The judge retries and counts the retries itself: the client's own retries are off.
        return openai.OpenAI(
            base_url=self.base_url, api_key=key, timeout=self.timeout, max_retries=0
        )

    def __repr__(self) -> str:
        return (
            f"HTTPJudge(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r}, pairs={self.scheme!r}, "
            f"concurrency={self.concurrency}, on_error={self.on_error!r}, "
            f"cache_dir={str(self.cache_dir) if self.cache_dir else None!r})"
        )

    def _redact(self, text: str) -> str:
        """``text`` with the API key (should a server echo it) replaced by ``***``."""
        key = getattr(self._client, "api_key", None)
        return text.replace(key, "***") if isinstance(key, str) and len(key) >= 4 else text

    def _key(self, item: tuple[str, str, str]) -> str:
        settings = {"temperature": self.temperature, "logprobs": self.logprobs}
        return cache_key(self.model, self.template, *item, **settings)

    def _count_call(self) -> None:
        with self._lock:
            self.counters.calls += 1

    def _parse(self, completion: Any) -> _Outcome:
        """The probability in a chat completion, or a malformed-answer outcome."""
        try:
            choice = completion.choices[0]
            text = choice.message.content
            content = getattr(choice.logprobs, "content", None) or [None]
            top = getattr(content[0], "top_logprobs", None) or []
            top = [(t.token, float(t.logprob)) for t in top]
        except Exception as err:  # the server's JSON is not a chat completion
            return self._garbage(err)
        p = probability_from_logprobs(top) if top else None
        p = probability_from_text(text) if p is None else p
        if p is None:
            return _Outcome(None, f"the answer {_short(text)} is neither A nor B", FIX_GARBAGE)
        return _Outcome(p)

    def _garbage(self, err: Exception) -> _Outcome:
        detail = _short(self._redact(f"{type(err).__name__}: {err}"))
        return _Outcome(None, f"a malformed response ({detail})", FIX_GARBAGE)

    def _status(self, err: Any) -> _Outcome:
        """The outcome of an HTTP error status (the fix depends on it)."""
        code, fix = err.status_code, FIX_FAILING
        if code in (401, 403):
            fix = f"the server rejected the API key from ${self.api_key_env}; check that key"
        elif code == 404:
            fix = f"check base_url (it usually ends in /v1) and that it serves model {self.model!r}"
        elif code not in RETRY_STATUSES:
            fix = "the server rejected the request (too long? logprobs unsupported: logprobs=False)"
        message = _short(self._redact(str(err.message)))
        return _Outcome(None, f"HTTP {code} {message}", fix, fatal=code in FATAL_STATUSES)

    def _ask(self, item: tuple[str, str, str], stop: threading.Event) -> _Outcome:
        """One ordered comparison: a request, retried with backoff; never raises. Once ``stop``
        is set (the batch is raising) it sends nothing more: no first request, no retry."""
        import openai

        prompt, first, second = item
        text = self.template.format(prompt=prompt, first=first, second=second)
        extra = {"logprobs": True, "top_logprobs": 5} if self.logprobs else {}
        attempts = self.max_retries + 1
        outcome = _Outcome(None, "not asked: the batch stopped on an earlier error")
        for attempt in range(attempts):
            if stop.is_set():
                return outcome
            wait_s = min(self.backoff * 2**attempt, self.max_wait)
            self._count_call()
            try:
                completion = self._client.chat.completions.create(
                    model=self.model,
                    messages=[{"role": "user", "content": text}],
                    max_tokens=1,
                    temperature=self.temperature,
                    **extra,
                )
            except openai.APITimeoutError:
                outcome = _Outcome(None, f"timeout (no answer in {self.timeout:g} s)", FIX_FAILING)
            except openai.APIConnectionError as err:
                cause = type(err.__cause__ or err).__name__
                outcome = _Outcome(
                    None, f"unreachable ({cause})", "start the server or fix base_url"
                )
            except openai.APIStatusError as err:
                outcome = self._status(err)
                if err.status_code not in RETRY_STATUSES:
                    return outcome
                if err.status_code == 429:
                    wait_s = retry_after(err.response.headers, wait_s, self.max_wait)
            except Exception as err:  # malformed JSON and other garbage: not retried
                return self._garbage(err)
            else:
                return self._parse(completion)
            if attempt + 1 < attempts and stop.wait(wait_s):  # woken early: the batch stopped
                return outcome
        outcome.error += f" after {attempts} attempt(s)"
        return outcome

    def _failure(self, outcome: _Outcome) -> JudgeError:
        """The error for a failed comparison: the URL, what happened and the fix."""
        skip = "" if outcome.fatal else ", or pass on_error='skip' to leave failed pairs NaN"
        return JudgeError(
            f"HTTP judge {self.endpoint} (model {self.model!r}) failed: {outcome.error}; "
            f"{outcome.fix}{skip}"
        )

    def __call__(
        self, prompts: Sequence[str], responses: Sequence[Sequence[str]], pairs: Pairs = None
    ) -> Tensor:
        """As :meth:`PreferenceOracle.__call__`; when it raises, ``counters.seconds`` and
        ``counters.queries`` still count the work done: the time spent and the pairs answered in
        both orders before the error (the base class counts them only for a result)."""
        start, self._answered = time.perf_counter(), []
        try:
            return super().__call__(prompts, responses, pairs)
        except BaseException:
            self.counters.seconds += time.perf_counter() - start
            done = self._answered  # ordered as PairwiseJudge.compare asks: (a, b), (b, a), ...
            both = zip(done[::2], done[1::2], strict=False)
            self.counters.queries += sum(f is not None and b is not None for f, b in both)
            raise

    def check_model(self) -> None:
        """Refuse a ``model`` that the server's ``GET /models`` list does not hold (one line
        naming both); skipped where the endpoint is missing (404), fails or lists nothing."""
        try:
            page = self._client.models.list(timeout=self.timeout)
            listed = [str(m.id) for m in (getattr(page, "data", None) or [])]
        except Exception as err:  # no /models (404), unreachable, garbage: the requests tell
            why = _short(self._redact(f"{type(err).__name__}: {err}"))
            log.debug("%s: GET /models failed (%s); model name not checked", self.name, why)
            return
        if listed and self.model not in listed:
            shown = ", ".join(repr(m) for m in listed[:SHOW_MODELS])
            more = f" and {len(listed) - SHOW_MODELS} more" if len(listed) > SHOW_MODELS else ""
            raise JudgeError(
                f"HTTP judge {self.base_url}/models does not list model {self.model!r}; the "
                f"server serves {shown}{more}: pass model= one of those"
            )

    def judge(self, items: list[tuple[str, str, str]]) -> list[float | None]:
        """``P(first better)`` for each ordered ``(prompt, first, second)``; None = skipped."""
        keys = [self._key(item) for item in items]
        cache = JudgeCache(self.cache_dir) if self.cache_dir is not None else None
        known: dict[str, float] = {}
        try:
            known = cache.get(keys) if cache is not None else {}
            self.counters.cache_hits += sum(k in known for k in keys)
            todo = {k: item for k, item in zip(keys, items, strict=True) if k not in known}
            if todo and not self._model_checked:  # once, before the first request
                self.check_model()
                self._model_checked = True
            self._ask_all(todo, cache, known)
            return [known.get(k) for k in keys]
        except BaseException:
            self._answered = [known.get(k) for k in keys]  # what __call__ counts as done
            raise
        finally:
            if cache is not None:
                cache.close()

    def _ask_all(self, todo: dict[str, tuple], cache: JudgeCache | None, known: dict) -> None:
        """Ask ``todo`` (key -> item), ``concurrency`` at a time; put the answers in ``known``
        and the cache as they come. On an error it stops the batch: queued requests are dropped,
        requests in flight finish without retries, answers already back are kept."""
        failed: list[_Outcome] = []
        if not todo:
            return
        stop = threading.Event()
        pool = ThreadPoolExecutor(min(self.concurrency, len(todo)))

        def keep(key: str, p: float) -> None:
            known[key] = p
            if cache is not None:  # at once: an interrupted batch keeps its answers
                cache.put(key, p)

        try:
            futures = {pool.submit(self._ask, item, stop): key for key, item in todo.items()}
            for future in as_completed(futures):
                outcome, key = future.result(), futures[future]
                if outcome.p is not None:
                    keep(key, outcome.p)
                elif outcome.fatal or self.on_error == "raise":
                    stop.set()
                    for other, other_key in futures.items():  # back, but not yet read: kept
                        if other.done() and not other.cancelled() and other.exception() is None:
                            if other.result().p is not None and other_key not in known:
                                keep(other_key, other.result().p)
                    raise self._failure(outcome)
                else:
                    failed.append(outcome)
        finally:  # on an error (or an interrupt) nothing more is sent
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
        if failed:
            log.warning(
                "%s: %d comparison(s) skipped, e.g. %s", self.name, len(failed), failed[0].error
            )
