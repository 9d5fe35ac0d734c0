"""windalign.config: one help string and one check per field, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from windalign.config import dump_yaml, help_table, load_yaml, option, split_help, validate


@dataclass(frozen=True)
class Toy:
    """A config with a checked int, a checked list, an unchecked field and a required one."""

    name: str = option(help="a label")
    k: int = option(8, help="actions per context (K); an integer >= 2", check=lambda v: v >= 2)
    levels: list[float] = option(
        default_factory=lambda: [0.5, 1.0],
        help="KL levels; a non-empty list of floats > 0",
        check=lambda v: len(v) > 0 and all(x > 0 for x in v),
    )
    seed: int = option(0, help="seed of the instance")

    def __post_init__(self) -> None:
        validate(self, "toy")


def test_good_values_pass_and_defaults_apply():
    toy = Toy("a", k=2, levels=[0.1])
    assert (toy.k, toy.levels, toy.seed) == (2, [0.1], 0)
    assert Toy("b").levels == [0.5, 1.0] and Toy("b").levels is not Toy("c").levels


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 1}, "toy.k = 1 is invalid; it must be an integer >= 2"),
        ({"levels": []}, "toy.levels = [] is invalid; it must be a non-empty list of floats > 0"),
        ({"levels": [1.0, -2.0]}, "toy.levels = [1.0, -2.0] is invalid; it must be a non-empty"),
        ({"k": "3"}, "toy.k = '3' is invalid; it must be an integer >= 2"),  # check raised
    ],
)
def test_bad_value_names_section_field_value_and_range(kwargs, message):
    with pytest.raises(ValueError) as err:
        Toy("a", **kwargs)
    assert str(err.value).startswith(message)


def test_first_failing_field_in_declaration_order_is_reported():
    with pytest.raises(ValueError, match=r"^toy\.k = 0 "):
        Toy("a", k=0, levels=[])


def test_replace_is_validated_too():
    with pytest.raises(ValueError, match=r"toy\.k = 1 is invalid"):
        dataclasses.replace(Toy("a"), k=1)


def test_empty_section_names_top_level_fields_without_prefix():
    @dataclass(frozen=True)
    class Top:
        workers: int = option(2, help="processes; an integer >= 1", check=lambda v: v >= 1)

        def __post_init__(self) -> None:
            validate(self, "")

    with pytest.raises(ValueError, match=r"^workers = 0 is invalid; it must be an integer >= 1$"):
        Top(0)
    last = help_table(Top, "").splitlines()[-1]
    assert last == "| `workers` | `2` | processes | an integer >= 1 |"


def test_split_help():
    assert split_help("steps per round; 1 = online (M); an integer >= 1") == (
        "steps per round; 1 = online (M)",
        "an integer >= 1",
    )
    assert split_help("a label") == ("a label", "")


def test_help_table_renders_every_field():
    table = help_table(Toy, "toy").splitlines()
    assert table[:2] == ["| key | default | meaning | valid |", "|---|---|---|---|"]
    assert table[2:] == [
        "| `toy.name` | (required) | a label | any |",
        "| `toy.k` | `8` | actions per context (K) | an integer >= 2 |",
        "| `toy.levels` | `[0.5, 1.0]` | KL levels | a non-empty list of floats > 0 |",
        "| `toy.seed` | `0` | seed of the instance | any |",
    ]


def test_project_configs_give_every_field_a_help_string_with_a_range():
    from windalign.bandit.config import BenchConfig, ReportSettings, TrainSettings, TuningSettings
    from windalign.bandit.env import EnvConfig
    from windalign.bandit.runner import RunConfig

    for cls in (EnvConfig, TrainSettings, TuningSettings, ReportSettings, RunConfig, BenchConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help string"
            if f.metadata.get("check") is not None:
                assert split_help(f.metadata["help"])[1], f"{cls.__name__}.{f.name}: no range"
        if cls is not RunConfig:  # RunConfig needs a method; every default must be valid
            cls()


def test_run_config_is_validated_on_construction():
    from windalign.bandit.runner import RunConfig

    samples = r"^run\.samples = 1 is invalid; it must be an integer >= 2$"
    with pytest.raises(ValueError, match=samples):
        RunConfig("dpo", samples=1)
    with pytest.raises(ValueError, match=r"^run\.policy = 'cnn' is invalid; it must be one of"):
        RunConfig("dpo", policy="cnn")
    assert RunConfig("dpo").samples == 4


_SCALARS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["1e3", "8e12345", "no", "yes", "On", ".5", "-.5E3", ".inf", "~", "0x10"]),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), _SCALARS, max_size=5))
def test_dump_yaml_reads_back_exactly_under_both_yaml_versions(data):
    """config.yaml is written by dump_yaml and read by load_yaml (YAML 1.2): a string such as
    "1e3" must not come back as a number (yaml.safe_dump writes it bare), nor "no" as False
    for a YAML 1.1 reader."""
    text = dump_yaml(data)
    assert load_yaml(text) == data
    assert yaml.safe_load(text) == data
