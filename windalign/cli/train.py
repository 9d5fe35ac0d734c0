"""``wind train``: align a causal LM with WIND (or a baseline) from a YAML config (THEORY.md 8).

    wind train --config configs/demo.yaml [--KEY VALUE ...] [--resume-from-checkpoint [PATH]]

The YAML holds every ``WINDConfig`` field (all of ``transformers.TrainingArguments`` too) and the
run settings (model, prompts, preference, peft); ``--KEY VALUE`` overrides one key (the value is
read as YAML 1.2: 2e-5 is a number, no is a string; --learning-rate and --learning_rate are the
same key). One file can serve several objectives: a block named after an objective (``jbond:
{num_samples: 3}``) applies when that objective runs, and a loss hyperparameter the file sets
for another objective is ignored with a note (typed on the command line, it is an error).
Everything is validated before any model loads. The run directory
(``output_dir``) gets ``status.json``, ``config.yaml``, ``metrics.jsonl``, checkpoints (complete
ones marked), the final ``model/`` (or adapter), ``plots/`` and ``report.md``. Every key is
documented in docs/llm-config.md. Several processes: ``--accelerate-config ddp|fsdp2|zero2|zero3
--num_processes N`` (or ``accelerate launch -m windalign.cli train ...``; docs/distributed.md).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from windalign.cli.options import import_from_cwd
from windalign.config import dump_yaml, load_yaml


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "train",
        help="align a language model with WIND or a baseline (YAML config)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # --KEY overrides must never be taken for an abbreviated option
    )
    p.add_argument(
        "--config",
        default=None,
        help="YAML config (default: the run's config.yaml when resuming, else every default)",
    )
    p.add_argument(
        "--resume-from-checkpoint",
        nargs="?",
        const=True,
        default=None,
        metavar="PATH",
        help="resume the run in output_dir from its last complete checkpoint (or PATH)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in output_dir")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(  # several processes (issue 8, docs/distributed.md)
        "--accelerate-config",
        default=None,
        metavar="PRESET|FILE",
        help="train on several processes: run this command again through `accelerate launch` "
        "with a preset (ddp, fsdp2, zero2, zero3) or your own accelerate config file",
    )
    p.add_argument(
        "--num-processes",
        type=int,
        default=None,
        metavar="N",
        help="processes for --accelerate-config (default: the config file's, or one per GPU)",
    )
    p.set_defaults(func=run, accepts_extra=True)
    return p


def _read_yaml(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"config file {path!r} does not exist")
    try:
        data = load_yaml(file.read_text())
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
    """``["--key", "value", "--other=value", ...]`` -> ``{key: yaml(value)}`` (YAML 1.2: see
    :func:`windalign.config.load_yaml`); dashes in a key read as underscores; a key without a
    value is an error."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--") or len(token) == 2:
            raise ValueError(f"unexpected argument {token!r}; overrides read --KEY VALUE")
        name, eq, value = token[2:].partition("=")
        key = name.replace("-", "_")
        if not eq:
            if i + 1 >= len(extra) or extra[i + 1].startswith("--"):
                raise ValueError(f"override --{key} has no value; write --{key} VALUE")
            value, i = extra[i + 1], i + 1
        try:
            out[key] = load_yaml(value)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or "invalid YAML"
            raise ValueError(f"--{key} {value!r} is not a valid YAML value ({problem})") from None
        i += 1
    return out


def objective_view(
    file: dict[str, Any], typed: dict[str, Any], source: str
) -> tuple[dict[str, Any], list[str]]:
    """The flat config of the objective that runs, from a config ``file`` (named ``source``)
    and the keys ``typed`` on the command line, and the notes to print.

    One file serves several objectives: a top-level block named after an objective applies
    (over the file's other keys) when that objective runs and is dropped otherwise; a loss
    hyperparameter or ``num_samples`` from the file's top level that the objective does not
    take is dropped with a note. Keys typed on the command line or in the objective's own
    block are kept, so a wrong one is still an error.
    """
    from windalign.llm.config import WINDConfig
    from windalign.objectives import LOSSES
    from windalign.objectives.registry import HYPERPARAMETERS

    blocks = {name: file[name] for name in LOSSES.names() if name in file}
    for name, block in blocks.items():
        if not isinstance(block, dict):
            raise ValueError(
                f"{source}: {name}: must be a mapping of keys for objective {name!r} "
                f"(e.g. {name}: {{num_samples: 3}}), got {block!r}"
            )
    base = {k: v for k, v in file.items() if k not in blocks}
    default = next(f.default for f in fields(WINDConfig) if f.name == "objective")
    objective = typed.get("objective", base.get("objective", default))
    if not (isinstance(objective, str) and objective in LOSSES):
        return {**base, **typed}, []  # an unknown objective: WINDConfig names the choices
    block, spec = blocks.get(objective, {}), LOSSES[objective]
    raw, notes = {**base, **block, **typed}, []
    from_file = [k for k in base if k not in block and k not in typed]
    for key in from_file:
        if key in HYPERPARAMETERS and key not in spec.defaults and base[key] is not None:
            del raw[key]
            notes.append(
                f"{key} = {base[key]!r} from {source} is ignored: objective {objective!r} has "
                f"no {key} (its hyperparameters: {', '.join(spec.defaults) or 'none'})"
            )
    if "num_samples" in from_file and spec.max_k not in (None, base["num_samples"]):
        raw["num_samples"] = spec.max_k
        notes.append(
            f"num_samples = {base['num_samples']!r} from {source} is replaced by "
            f"{spec.max_k}: objective {objective!r} samples exactly {spec.max_k} responses per "
            "prompt"
        )
    return raw, notes


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
    if str(getattr(args.eval_strategy, "value", args.eval_strategy)) != "no":
        if settings.eval_prompts is None:
            raise ValueError(
                f"eval_strategy = {raw.get('eval_strategy')!r} evaluates on eval_prompts, which "
                "is not set: set eval_prompts (e.g. builtin:heldout) or eval_strategy: no"
            )
    return settings, args


def resolved(settings: Any, args: Any, raw: dict[str, Any]) -> dict[str, Any]:
    """The config as run: the run settings, every WIND field, and the keys the user set."""
    from dataclasses import asdict

    out = asdict(settings)
    out.update({name: getattr(args, name) for name in args.wind_fields()})
    # the other keys the user set, as given (TrainingArguments turns some into enums)
    out.update({k: raw[k] for k in raw if k not in out})
    return load_yaml(dump_yaml(out))  # plain types only


def run(args: argparse.Namespace) -> int:
    """Validate the config, train in one run directory, write the model, plots and report."""
    file: dict[str, Any] = _read_yaml(args.config) if args.config else {}
    source = args.config
    typed = parse_overrides(getattr(args, "extra", []))
    resume = args.resume_from_checkpoint
    if args.config is None and resume is not None:
        saved = Path(typed.get("output_dir", "runs/train")) / "config.yaml"
        if saved.is_file():
            file, source = _read_yaml(str(saved)), str(saved)
    if args.no_progress:
        typed["disable_tqdm"] = True
    raw, notes = objective_view(file, typed, source or "the config")
    settings, wind = split_config(raw)
    config = resolved(settings, wind, raw)
    main = wind.process_index == 0  # several processes: only the main one owns the run directory
    for note in notes if main else ():
        print(f"wind train: note: {note}", file=sys.stderr)
    if args.accelerate_config is not None or args.num_processes is not None:
        from windalign.llm.launch import relaunch

        return relaunch(args.argv, args.accelerate_config, args.num_processes, wind.use_cpu)
    from windalign.llm.distributed import check_launch, main_decides
    from windalign.llm.state import resumable_checkpoint
    from windalign.rundir import RunDir

    check_launch(wind)
    out = Path(wind.output_dir)
    if resume is not None:  # before the run directory opens: a wrong path leaves it alone
        resume = str(resumable_checkpoint(out, resume))
    with contextlib.ExitStack() as stack:
        with main_decides(wind):  # the other processes wait for it to open the directory
            rd = None
            if main:
                rundir = RunDir(
                    out, args.argv, overwrite=args.overwrite, resume=resume is not None,
                    flag="output_dir",
                )  # fmt: skip
                rd = stack.enter_context(rundir)
                if resume is not None:
                    _check_same_config(out / "config.yaml", config)
                else:
                    rd.write("config.yaml", dump_yaml(config))
        trainer = _build(settings, wind)
        start = time.perf_counter()
        trainer.train(resume_from_checkpoint=resume)
        wall = time.perf_counter() - start
        trainer.save_model(str(out / "model"))  # on every process (FSDP2 / ZeRO-3 gather)
        if rd is not None:
            _finish(trainer, rd, config, wall)
        trainer.accelerator.wait_for_everyone()
    # the process group is torn down before exit: a gloo rank left to the interpreter's exit
    # can abort ("terminate called without an active exception") under load (CI, stop 22)
    trainer.accelerator.end_training()
    if not main:  # a secondary rank is done (the main one writes and reports): leave without
        sys.stdout.flush()  # the interpreter's teardown, where that abort still happened under
        sys.stderr.flush()  # load after the process group was destroyed (stop 23)
        os._exit(0)
    if main:
        print(f"wrote {out}/: {_written(out)}")
    return 0


def _written(out: Path) -> str:
    """What the run directory holds, for the closing line."""
    from windalign.llm.state import checkpoints, is_complete

    names = [f"{p.name}/" if p.is_dir() else p.name for p in sorted(out.iterdir())]
    names = [n for n in names if not n.startswith((".", "checkpoint-"))]
    done = sum(is_complete(p) for _, p in checkpoints(out))
    return ", ".join(names) + (f", {done} checkpoint(s)" if done else ", no checkpoints")


def _check_same_config(path: Path, config: dict[str, Any]) -> None:
    if not path.is_file():
        raise ValueError(f"{path} is missing: this directory holds no wind train run to resume")
    saved = load_yaml(path.read_text()) or {}
    diff = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
    diff = [k for k in diff if k not in ("disable_tqdm", "eval_baseline_cache")]  # same numbers
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
    from windalign.lm.loading import resolve_model
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
    for what, name, revision in (
        ("model", settings.model, wind.model_revision),
        ("ref_model", settings.ref_model, wind.ref_model_revision),
    ):  # a model that cannot load: refused before the oracle loads its own
        if name is not None:
            resolve_model(name, revision, what=what)
    peft_config = None
    if settings.peft is not None:
        from peft import LoraConfig

        peft_config = _built("peft", LoraConfig, {"task_type": "CAUSAL_LM", **settings.peft})
    name, kwargs = settings.preference, settings.preference_kwargs
    import_from_cwd()
    preference = _built(f"preference {name!r} with preference_kwargs", as_oracle, kwargs, name)
    return WINDTrainer(
        model=settings.model,
        ref_model=settings.ref_model,
        args=wind,
        preference=preference,
        train_dataset=prompts,
        eval_dataset=eval_dataset,
        peft_config=peft_config,
    )


def _built(key: str, factory: Any, kwargs: dict[str, Any], *args: Any) -> Any:
    """``factory(*args, **kwargs)`` with its errors naming the config ``key`` (and, for a wrong
    keyword, the keywords it takes) in one line."""
    try:
        return factory(*args, **kwargs)
    except TypeError as err:
        raise ValueError(f"{key} {kwargs}: {err}") from None
    except ValueError as err:
        if not kwargs and key.startswith("preference"):
            raise
        raise ValueError(f"{key} {kwargs}: {err}") from None


def _finish(trainer: Any, rd: Any, config: dict[str, Any], wall: float) -> None:
    from windalign.llm.report import plot_metrics, read_metrics, write_report

    rows, evals = read_metrics(rd.path / "metrics.jsonl")
    plot_metrics(rows, evals, rd.path / "plots", wall)
    text = write_report(rd.path, config, wall, trainer.round_examples(3), trainer.last_evaluation)
    rd.write("report.md", text)
