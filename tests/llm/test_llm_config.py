"""WINDConfig: one field per loss hyperparameter, checked on creation; the docs page is current."""

from __future__ import annotations

from pathlib import Path

from windalign.llm.config import WINDConfig, config_docs
from windalign.objectives import LOSSES

DOCS = Path(__file__).parents[2] / "docs" / "llm-config.md"


def test_every_loss_hyperparameter_is_a_config_field():
    names = {n for e in LOSSES.entries() for n in e.obj.defaults}
    assert names <= set(WINDConfig.wind_fields())


def test_config_page_is_generated_from_the_help_strings():
    assert DOCS.read_text() == config_docs(), "regenerate: python -c 'from windalign.llm.config "
    'import config_docs; open("docs/llm-config.md", "w").write(config_docs())\''


def test_every_objective_resolves_its_defaults(tmp_path):
    for name in LOSSES.names():
        k = LOSSES[name].max_k or 4
        cfg = WINDConfig(output_dir=str(tmp_path), objective=name, num_samples=k, use_cpu=True)
        assert cfg.loss_hyperparameters() == LOSSES[name].defaults
