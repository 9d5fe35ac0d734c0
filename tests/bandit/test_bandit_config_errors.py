"""Bad bandit configs fail at load, with one line naming the key (or file and line) and the fix."""

from __future__ import annotations

import time

import pytest

from windalign.bandit.benchmark import with_overrides
from windalign.bandit.config import config_from_dict, load_config, memory_estimate
from windalign.bandit.methods import BENCH_METHODS
from windalign.cli import main
from windalign.cli.bandit import METHOD_NAMES


def _load(tmp_path, text: str, **kw):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path, **kw)


@pytest.mark.parametrize(
    ("method", "key", "value", "valid"),
    [
        ("jbond", "jeffreys", 2, "a float in [0, 1]"),
        ("nash-md", "beta", -1, "a finite float >= 0"),
        ("jbond", "jeffreys", -0.5, "a float in [0, 1]"),
        ("jbond", "fail_reward", 1.0, "a finite float <= 0"),
        ("jbond", "beta_anchor", -1, "a finite float >= 0"),
        ("nash-md-fixed-alpha", "alpha", 1.5, "a float in [0, 1]"),
        ("wind-kl", "beta", ".inf", "a finite float >= 0"),
        ("wind-squared", "beta", -0.1, "a finite float >= 0"),
        ("dpo", "beta", 0, "a finite float > 0"),
        ("ipo", "beta", ".inf", "a finite float > 0"),
    ],
)
def test_hyperparameters_out_of_range_name_the_key_at_load(tmp_path, method, key, value, valid):
    with pytest.raises(ValueError) as err:
        _load(tmp_path, f"hyperparameters:\n  {method}: {{{key}: {value}}}\n")
    assert str(err.value).startswith(f"hyperparameters.{method}.{key} = ")
    assert f"is invalid; it must be {valid}" in str(err.value)


def test_hyperparameter_in_range_is_accepted_and_used(tmp_path):
    cfg = _load(tmp_path, "hyperparameters:\n  jbond: {beta_anchor: 2}\n")
    assert cfg.hyperparameters == {"jbond": {"beta_anchor": 2.0}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hyperparameters: [1, 2]\n", "hyperparameters must be a mapping of method names"),
        ("hyperparameters: 3\n", "hyperparameters must be a mapping of method names"),
        ("hyperparameters: {jbond: 0.5}\n", "hyperparameters.jbond must be a mapping of"),
        ("hyperparameters: {jbond: [0.5]}\n", "hyperparameters.jbond must be a mapping of"),
        ("hyperparameters: {jbond: {beta: [0.1]}}\n", "hyperparameters.jbond.beta = [0.1]"),
        ("hyperparameters: {jbond: {beta: x}}\n", "hyperparameters.jbond.beta = 'x' is inv"),
        ("hyperparameters: {jbnod: {gamma: 0.1}}\n", "hyperparameters.jbnod: unknown method"),
        ("hyperparameters: {jbond: {eta: 0.1}}\n", "hyperparameters.jbond.eta is not a hyper"),
    ],
)
def test_hyperparameters_given_as_a_list_or_a_scalar(tmp_path, text, message):
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace(".", r"\.")):
        _load(tmp_path, text)


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    with pytest.raises(ValueError) as err:
        _load(tmp_path, "train:\n  beta: 0.1\n hidden: 3\n")
    message = str(err.value)
    assert f"{tmp_path / 'config.yaml'}:3:2: invalid YAML" in message
    assert "fix the syntax there" in message and "\n" not in message
    with pytest.raises(ValueError, match=r"config.yaml:2:1: invalid YAML: .* started at line 1"):
        _load(tmp_path, "train: [1, 2\n")


def test_binary_config_file_is_refused(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ValueError, match=r"model\.bin is a binary file, not a YAML text file"):
        load_config(path)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("train: {policy: caf\xe9}\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.yaml is not UTF-8 text"):
        load_config(latin)


def test_config_given_a_directory(tmp_path):
    with pytest.raises(ValueError, match="is a directory; give a YAML file"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    "env", [{"n_actions": 200_000}, {"n_eval": 10**9}, {"n_contexts": 10**8, "n_actions": 2000}]
)
def test_sizes_too_large_for_memory_are_refused_at_load(env):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"of memory, more than the .* available; lower env"):
        config_from_dict({"env": env})
    assert time.perf_counter() - start < 5


def test_memory_estimate_grows_with_workers():
    one = memory_estimate(config_from_dict({"workers": 1}))
    assert memory_estimate(config_from_dict({"workers": 2})) == 2 * one


def test_duplicated_methods_in_the_config_are_refused():
    with pytest.raises(ValueError, match="methods lists 'jbond' twice; give each method once"):
        config_from_dict({"methods": ["jbond", "dpo", "jbond"]})
    with pytest.raises(ValueError, match="--methods lists 'dpo' twice"):
        with_overrides(config_from_dict({}), None, ["dpo", "dpo"])


def test_query_budget_below_one_round_is_refused_at_load():
    with pytest.raises(ValueError, match=r"train.query_budget = 10 is less than one round of"):
        config_from_dict({"train": {"query_budget": 10}})


def test_yaml_1_1_exponent_without_a_dot_is_a_float(tmp_path):
    assert _load(tmp_path, "train: {beta: 1e-3}\n").train.beta == 1e-3


def test_beta_outside_the_solver_range_is_refused():
    with pytest.raises(ValueError, match=r"train.beta = 1e-06 is invalid; it must be a float in"):
        config_from_dict({"train": {"beta": 1e-6}})


def test_set_with_invalid_yaml_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"--set 'train.beta=\[1,': the value is not valid YAML"):
        _load(tmp_path, "{}\n", overrides=["train.beta=[1,"])


def test_help_names_match_the_registry(capsys):
    assert list(METHOD_NAMES) == BENCH_METHODS.names()
    with pytest.raises(SystemExit):
        main(["bandit", "--help"])
    out = "".join(capsys.readouterr().out.split())  # help lines wrap anywhere, hyphens too
    assert "separatedbyspacesorcommas" in out
    assert "oneormoreof:" + ",".join(BENCH_METHODS.names()) in out


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        (["jbond", "jbond"], "--methods lists 'jbond' twice; give each method once"),
        (["jbond,dpo", "dpo"], "--methods lists 'dpo' twice; give each method once"),
        (["jbond,nope"], "unknown method 'nope'; choose one of: wind-squared"),
        ([","], "--methods is empty; choose from: wind-squared"),
    ],
)
def test_cli_methods_errors(tmp_path, capsys, methods, message):
    out = tmp_path / "run"
    assert main(["bandit", "--quick", "--methods", *methods, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"wind bandit: error: {message}" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_methods_take_spaces_or_commas(monkeypatch, tmp_path):
    import windalign.bandit.benchmark as benchmark

    seen = []
    monkeypatch.setattr(benchmark, "write_run", lambda cfg, *a, **k: seen.append(cfg.methods))
    for form in (["jbond", "dpo"], ["jbond,dpo"], ["jbond,", "dpo"]):
        with pytest.raises(AttributeError):  # the stub returns None, not the summary path
            main(["bandit", "--quick", "--methods", *form, "--out", str(tmp_path / "o")])
    assert seen == [["jbond", "dpo"]] * 3
