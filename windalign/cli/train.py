"""``wind train``: align a causal LM with WIND (or a baseline) from a YAML config (THEORY.md 8).

    wind train --config configs/demo.yaml [--KEY VALUE ...] [--resume_from_checkpoint [PATH]]

The YAML holds every ``WINDConfig`` field (all of ``transformers.TrainingArguments`` too) and the
run settings (model, prompts, preference, peft); ``--KEY VALUE`` overrides one key (the value is
read as YAML). Everything is validated before any model loads. The run directory
(``output_dir``) gets ``status.json``, ``config.yaml``, ``metrics.jsonl``, checkpoints (complete
ones marked), the final ``model/`` (or adapter), ``plots/`` and ``report.md``. Every key is
documented in docs/llm-config.md. Several processes: ``--accelerate_config ddp|fsdp2|zero2|zero3
--num_processes N`` (or ``accelerate launch -m windalign.cli train ...``; docs/distributed.md).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "train",
        help="align a language model with WIND or a baseline (YAML config)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        default=None,
        help="YAML config (default: the run's config.yaml when resuming, else every default)",
    )
    p.add_argument(
        "--resume_from_checkpoint",
        nargs="?",
        const=True,
        default=None,
        metavar="PATH",
        help="resume the run in output_dir from its last complete checkpoint (or PATH)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in output_dir")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(  # several processes (issue 8, docs/distributed.md)
        "--accelerate_config",
        default=None,
        metavar="PRESET|FILE",
        help="train on several processes: run this command again through `accelerate launch` "
        "with a preset (ddp, fsdp2, zero2, zero3) or your own accelerate config file",
    )
    p.add_argument(
        "--num_processes",
        type=int,
        default=None,
        metavar="N",
        help="processes for --accelerate_config (default: the config file's, or one per GPU)",
    )
    p.set_defaults(func=run, accepts_extra=True)
    return p


def _read_yaml(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"config file {path!r} does not exist")
    try:
        data = yaml.safe_load(file.read_text())
    except UnicodeDecodeError:
        raise ValueError(f"config file {path!r} is not a text (YAML) file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ValueError(f"config file {path!r} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path!r} must be a mapping of keys to values")
    return data


def parse_overrides(extra: list[str]) -> dict[str, Any]:
    """``["--key", "value", ...]`` -> ``{key: yaml(value)}``; a key without value is an error."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        key = extra[i]
        if not key.startswith("--") or len(key) == 2:
            raise ValueError(f"unexpected argument {key!r}; overrides read --KEY VALUE")
        if i + 1 >= len(extra) or extra[i + 1].startswith("--"):
            raise ValueError(f"override {key} has no value; write {key} VALUE")
        out[key[2:].replace("-", "_")] = yaml.safe_load(extra[i + 1])
        i += 2
    return out


def split_config(raw: dict[str, Any]) -> tuple[Any, Any]:
    """``(RunSettings, WINDConfig)`` from one flat mapping; unknown keys are errors."""
    from windalign.llm.config import RunSettings, WINDConfig

    run_keys = {f.name for f in fields(RunSettings)}
    wind_keys = {f.name for f in fields(WINDConfig) if f.init}
    for key in raw:
        if key not in run_keys | wind_keys:
            near = difflib.get_close_matches(key, sorted(run_keys | wind_keys), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"unknown config key {key!r}{hint} (every key: docs/llm-config.md)")
    settings = RunSettings(**{k: v for k, v in raw.items() if k in run_keys})
    wind = {k: v for k, v in raw.items() if k in wind_keys}
    wind.setdefault("output_dir", "runs/train")
    try:
        args = WINDConfig(**wind)
    except TypeError as err:
        raise ValueError(f"config: {err}") from None
    return settings, args


def resolved(settings: Any, args: Any, raw: dict[str, Any]) -> dict[str, Any]:
    """The config as run: the run settings, every WIND field, and the keys the user set."""
    from dataclasses import asdict

    out = asdict(settings)
    out.update({name: getattr(args, name) for name in args.wind_fields()})
    # the other keys the user set, as given (TrainingArguments turns some into enums)
    out.update({k: raw[k] for k in raw if k not in out})
    return yaml.safe_load(yaml.safe_dump(out))  # plain types only


def run(args: argparse.Namespace) -> int:
    """Validate the config, train in one run directory, write the model, plots and report."""
    raw: dict[str, Any] = _read_yaml(args.config) if args.config else {}
    raw.update(parse_overrides(getattr(args, "extra", [])))
    resume = args.resume_from_checkpoint
    if args.config is None and resume is not None:
        saved = Path(raw.get("output_dir", "runs/train")) / "config.yaml"
        raw = {**_read_yaml(str(saved)), **raw} if saved.is_file() else raw
    if args.no_progress:
        raw["disable_tqdm"] = True
    settings, wind = split_config(raw)
    config = resolved(settings, wind, raw)
    if args.accelerate_config is not None or args.num_processes is not None:
        from windalign.llm.launch import relaunch

        return relaunch(args.argv, args.accelerate_config, args.num_processes, wind.use_cpu)
    from windalign.llm.distributed import check_launch, main_decides
    from windalign.rundir import RunDir

    check_launch(wind)
    out = Path(wind.output_dir)
    main = wind.process_index == 0  # several processes: only the main one owns the run directory
    with contextlib.ExitStack() as stack:
        with main_decides(wind):  # the other processes wait for it to open the directory
            rd = None
            if main:
                rundir = RunDir(out, args.argv, overwrite=args.overwrite, resume=resume is not None)
                rd = stack.enter_context(rundir)
                if resume is not None:
                    _check_same_config(out / "config.yaml", config)
                else:
                    rd.write("config.yaml", yaml.safe_dump(config, sort_keys=False))
        trainer = _build(settings, wind)
        start = time.perf_counter()
        trainer.train(resume_from_checkpoint=resume)
        wall = time.perf_counter() - start
        trainer.save_model(str(out / "model"))  # on every process (FSDP2 / ZeRO-3 gather)
        if rd is not None:
            _finish(trainer, rd, config, wall)
    if main:
        print(f"wrote {out}/ (model/, metrics.jsonl, report.md, plots/, checkpoints)")
    return 0


def _check_same_config(path: Path, config: dict[str, Any]) -> None:
    if not path.is_file():
        raise ValueError(f"{path} is missing: this directory holds no wind train run to resume")
    saved = yaml.safe_load(path.read_text()) or {}
    diff = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
    diff = [k for k in diff if k not in ("disable_tqdm",)]
    if diff:
        k = diff[0]
        raise ValueError(
            f"resuming with a different config: {k} was {saved.get(k)!r}, now {config.get(k)!r} "
            f"({len(diff)} key(s) differ); resume with the run's own config.yaml or start a new run"
        )


def _build(settings: Any, wind: Any) -> Any:
    """The trainer: prompts (checked first), then peft, the oracle and the models."""
    from windalign.llm.data import load_prompts
    from windalign.llm.trainer import WINDTrainer
    from windalign.preferences import as_oracle

    subset = settings.prompts_subset
    prompts = load_prompts(
        settings.prompts, wind.prompt_column, split=settings.prompts_split, subset=subset
    )
    eval_dataset = None
    if settings.eval_prompts is not None:
        eval_dataset = load_prompts(
            settings.eval_prompts, wind.prompt_column, split=settings.eval_prompts_split,
            subset=subset,
        )  # fmt: skip
        eval_dataset = eval_dataset[: settings.eval_prompt_count]
    peft_config = None
    if settings.peft is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="CAUSAL_LM", **settings.peft)
    return WINDTrainer(
        model=settings.model,
        ref_model=settings.ref_model,
        args=wind,
        preference=as_oracle(settings.preference, **settings.preference_kwargs),
        train_dataset=prompts,
        eval_dataset=eval_dataset,
        peft_config=peft_config,
    )


def _finish(trainer: Any, rd: Any, config: dict[str, Any], wall: float) -> None:
    from windalign.llm.report import plot_metrics, read_metrics, write_report

    rows, evals = read_metrics(rd.path / "metrics.jsonl")
    plot_metrics(rows, evals, rd.path / "plots", wall)
    text = write_report(rd.path, config, wall, trainer.round_examples(3), trainer.last_evaluation)
    rd.write("report.md", text)
