"""The adbench command line (Typer): parses options and calls the engine, nothing else."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer
from rich.markup import escape
from rich.table import Table

from adbench.allocator import tune_host_allocator
from adbench.atomic import UNWRITABLE, unwritable
from adbench.config import RunConfig, checked_name, config_from, load_config, parse_scorer, parse_sets, quick
from adbench.errors import AdbenchError
from adbench.progress import make_console

if TYPE_CHECKING:
    from adbench.engine.executors import LocalExecutor, RayExecutor
    from adbench.tracking import Tracker

app = typer.Typer(help="Benchmark and ablation harness for diffusion-based industrial anomaly detection.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  rich_markup_mode=None)  # help texts are literal: "adbench-uiad[ray]" keeps its brackets
out = make_console(stderr=False)  # results
err = make_console()  # messages
_state = {"debug": False}

DEFAULT_RESULTS = Path("results")
TRACKING_OPTIONS = [  # (parameter, type, flags, help) of the options that choose where cells are also logged
    ("loggers", list[str] | None, ("--logger",), "Also log every finished cell (config, metrics, anomaly maps) "
     "to mlflow or tensorboard (repeatable; pip install 'adbench-uiad[mlflow]' or 'adbench-uiad[tensorboard]')."),
    ("tracking_uri", str | None, ("--tracking-uri",), "MLflow tracking URI (a server or database); default "
     "$MLFLOW_TRACKING_URI, else sqlite:///<results-dir>/mlflow.db, artifacts in <results-dir>/mlartifacts."),
]
EXECUTION_OPTIONS = [  # (parameter, type, flags, help) of the options that choose where cells run
    ("executor", str | None, ("--executor",), "local (default): the cells one after another in this process; ray: "
     "one Ray task per trained model and the cells it scores, on every GPU of this machine or of a cluster "
     "(pip install 'adbench-uiad[ray]')."),
    ("ray_address", str | None, ("--ray-address",), "Ray cluster to join: auto (the running one) or its address; "
     "default: start Ray on this machine."),
    ("cpus_per_task", float | None, ("--cpus-per-task",), "CPUs a Ray task reserves (default 1)."),
    ("gpus_per_task", float | None, ("--gpus-per-task",), "GPUs a Ray task reserves (default 1 on a cluster "
     "with GPUs, else 0)."),
    ("max_retries", int | None, ("--max-retries",), "Times a Ray task whose worker died is run again before "
     "its cells are recorded as failed (default 2)."),
]


def cache_dir_default() -> Path:
    from adbench.paths import default_cache_dir

    return default_cache_dir()


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False) -> None:
    _state["debug"] = debug
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "TORCHELASTIC_RUN_ID" in os.environ:
        fail(AdbenchError("adbench was started by torchrun: every process would run the whole command and write "
                          "the same results. adbench starts a training's processes itself: run the command once, "
                          "with --nproc-per-node N (and --nnodes, --rdzv-endpoint across machines)"))
    tune_host_allocator()


def fail(exc: BaseException) -> None:
    if _state["debug"]:
        traceback.print_exception(exc)
    err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def guarded(fn):
    """Turn an AdbenchError raised by a command into one clear line and exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AdbenchError as exc:
            fail(exc)
        except OSError as exc:  # a folder written outside the atomic writers (e.g. a dataset generated)
            if exc.errno not in UNWRITABLE:
                raise
            fail(unwritable(Path(exc.filename or "?"), exc))

    return wrapper


ConfigArg = Annotated[Path | None, typer.Argument(help="YAML run config; flags override its keys.")]
Opt = typer.Option


QUICK_HELP = ("A smoke run, the same on every command that trains: 20 epochs (2 of warm-up) into a folder "
              "named <name>-quick; a grid also takes its quick axes, a study its quick_trials, sweep-t 3 timesteps.")
PRECISION_HELP = ("Noise net when scoring on CUDA: bf16 (autocast, default, as the official evaluation) or fp32 "
                  "(training: --set train.precision=bf16; fp32 by default, as the official training). CPU always "
                  "runs fp32.")
NPROC_HELP = ("Train each noise net on N processes of this machine, one per GPU (torch.distributed DDP, or FSDP with "
              "--set train.strategy=fsdp; gloo on CPUs); --batch-size stays the global batch, split across them. "
              "Default: in this process.")
BACKBONE_PRECISION_HELP = "Backbone on CUDA: fp32 (default, as the official code) or bf16 (autocast)."


def build_config(config: Path | None, dataset: str | None, data_root: str | None, category: list[str] | None,
                 backbone: str | None, weights: str | None, pretrained: bool | None, noise_net: str | None,
                 scorer: list[str] | None, epochs: int | None, batch_size: int | None, protocol: str | None,
                 image_score: str | None, precision: str | None, backbone_precision: str | None,
                 seed: int | None, device: str | None, name: str | None, image_size: int | None,
                 set_: list[str] | None, quick_run: bool | None = None, nproc_per_node: int | None = None,
                 nnodes: int | None = None, rdzv_endpoint: str | None = None) -> RunConfig:
    flags: dict[str, Any] = {
        "data.dataset": dataset, "data.root": data_root, "categories": category or None, "backbone.name": backbone,
        "backbone.weights": weights, "backbone.pretrained": pretrained, "noise_net.name": noise_net,
        "scoring.scorers": [parse_scorer(s) for s in scorer] if scorer else None, "scoring.image_score": image_score,
        "scoring.protocol": protocol, "noise_net.precision": precision, "backbone.precision": backbone_precision,
        "train.epochs": epochs, "train.batch_size": batch_size, "seed": seed, "runtime.device": device,
        "runtime.name": name, "backbone.image_size": image_size, "runtime.nproc_per_node": nproc_per_node,
        "runtime.nnodes": nnodes, "runtime.rdzv_endpoint": rdzv_endpoint,
    }
    cfg = config_with_flags(config, {**flags, **parse_sets(set_)})
    return quick(cfg) if quick_run else cfg


def config_with_flags(config: Path | None, flags: dict[str, Any]) -> RunConfig:
    """The YAML ``config`` (or the defaults) with the flags given (dotted keys; None: not given)."""
    given = {k: v for k, v in flags.items() if v is not None}
    return load_config(config, given) if config else config_from({}, given, "options")


def option_parameters(options: list[tuple]) -> list:
    """Keyword-only command parameters from (name, type, flags, help) tuples, each defaulting to None."""
    import inspect

    return [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[t, Opt(*f, help=h)])
            for n, t, f, h in options]


def run_options(fn):
    """The flags shared by train and run, documented once."""
    import functools
    import inspect

    params = [
        inspect.Parameter("config", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=ConfigArg),
        *option_parameters([
              ("dataset", str | None, ("--dataset",), "Dataset name (adbench list datasets)."),
              ("data_root", str | None, ("--data-root",), "Local dataset folder."),
              ("category", list[str] | None, ("--category", "-c"), "Category to run (repeatable; default all)."),
              ("backbone", str | None, ("--backbone",), "Backbone name."),
              ("weights", str | None, ("--weights",), "Local backbone weights file (offline)."),
              ("pretrained", bool | None, ("--pretrained/--no-pretrained",), "Use pretrained backbone weights."),
              ("noise_net", str | None, ("--noise-net",), "Noise net name."),
              ("scorer", list[str] | None, ("--scorer", "-s"), "Scorer, e.g. invad:steps=5 (repeatable)."),
              ("epochs", int | None, ("--epochs",), "Training epochs."),
              ("batch_size", int | None, ("--batch-size",), "Training batch size."),
              ("protocol", str | None, ("--protocol",), "Scoring protocol: invad (raw maps, nll+diff) or ader "
               "(sigma 4, max of 16x16-pooled map)."),
              ("image_score", str | None, ("--image-score",), "nll, diff, nll+diff or max (overrides the protocol)."),
              ("precision", str | None, ("--precision",), PRECISION_HELP),
              ("backbone_precision", str | None, ("--backbone-precision",), BACKBONE_PRECISION_HELP),
              ("seed", int | None, ("--seed",), "Random seed."),
              ("device", str | None, ("--device",), "auto, cpu, cuda or cuda:N."),
              ("name", str | None, ("--name",), "Run name (prefix of the results folder)."),
              ("image_size", int | None, ("--image-size",), "Input size in pixels (a multiple of 16; 256)."),
              ("set_", list[str] | None, ("--set",), "key=value override of any config key, e.g. "
               "train.lr=1e-4 or data.args={threshold: 0.5} (repeatable)."),
              ("quick_run", bool | None, ("--quick",), QUICK_HELP),
              ("nproc_per_node", int | None, ("--nproc-per-node",), NPROC_HELP),
              ("nnodes", int | None, ("--nnodes",), "Train each noise net across this many machines, each running "
               "this same `adbench train` command with --nproc-per-node and --rdzv-endpoint (default 1); the "
               "machine of rank 0 writes the model."),
              ("rdzv_endpoint", str | None, ("--rdzv-endpoint",), "HOST:PORT where the machines of --nnodes meet "
               "(torch's c10d rendezvous: a free port on one of them)."),
              ("results_dir", Path | None, ("--results-dir",), "Where run folders are written (default results/)."),
              ("resume", Path | None, ("--resume",), "Run folder to continue (killed or trained only): its "
               "finished cells are kept and skipped; the config, if given, must be the folder's."),
              ("cache_dir", Path | None, ("--cache-dir",), "Feature and dataset cache (default $ADBENCH_CACHE)."),
              *TRACKING_OPTIONS,
              *EXECUTION_OPTIONS,
          ]),
    ]

    @functools.wraps(fn)
    @guarded
    def wrapper(**kw: Any) -> None:
        results_dir, cache_dir = kw.pop("results_dir") or DEFAULT_RESULTS, kw.pop("cache_dir") or cache_dir_default()
        resume, tracking, execution = kw.pop("resume"), taken(Tracking, kw), taken(Execution, kw)
        given = any(v is not None for v in kw.values())
        fn(build_config(**kw) if given or resume is None else None, results_dir, cache_dir, resume, tracking,
           execution)

    wrapper.__signature__ = inspect.Signature(params)
    return wrapper


class Tracking(NamedTuple):
    """The options of TRACKING_OPTIONS as given (None: not given)."""

    loggers: list[str] | None = None
    uri: str | None = None

    def open(self, experiment: str, results_dir: Path) -> Tracker:
        """The tracker, opened before any work: a missing package or an unreachable server fails at once."""
        from adbench.tracking import Tracker

        return Tracker(self.loggers, experiment, results_dir, self.uri)


class Execution(NamedTuple):
    """The options of EXECUTION_OPTIONS as given (None: not given)."""

    executor: str | None = None
    ray_address: str | None = None
    cpus_per_task: float | None = None
    gpus_per_task: float | None = None
    max_retries: int | None = None

    def build(self) -> LocalExecutor | RayExecutor:
        from adbench.engine.executors import EXECUTORS, LocalExecutor, RayExecutor

        if self.executor not in (None, *EXECUTORS):
            raise AdbenchError(f"--executor {self.executor}: choose from {', '.join(EXECUTORS)}")
        if self.executor != "ray":
            ray_only = [f"--{k.replace('_', '-')}" for k, v in self._asdict().items()
                        if k != "executor" and v is not None]
            if ray_only:
                raise AdbenchError(f"{', '.join(ray_only)} apply to --executor ray only")
            return LocalExecutor()
        for flag, value in (("--cpus-per-task", self.cpus_per_task), ("--gpus-per-task", self.gpus_per_task),
                            ("--max-retries", self.max_retries)):
            if value is not None and value < 0:
                raise AdbenchError(f"{flag} must be >= 0, got {value}")
        return RayExecutor(self.ray_address, 1 if self.cpus_per_task is None else self.cpus_per_task,
                           self.gpus_per_task, 2 if self.max_retries is None else self.max_retries)


OPTION_GROUPS = {Tracking: ("tracking", TRACKING_OPTIONS), Execution: ("execution", EXECUTION_OPTIONS)}


def taken(group: type, kw: dict[str, Any]) -> Any:
    """``group`` (Tracking or Execution) made of its options, popped from a command's keyword arguments."""
    return group(*(kw.pop(name) for name, *_ in OPTION_GROUPS[group][1]))


def with_options(group: type):
    """Decorator: the command takes ``group``'s options (OPTION_GROUPS) and receives them as one argument,
    ``tracking`` or ``execution``."""
    import functools
    import inspect
    import typing

    name, options = OPTION_GROUPS[group]

    def decorate(fn):
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)  # not strings; another group's are objects already
        params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
                  if p.name != name]

        @functools.wraps(fn)
        def wrapper(**kw: Any) -> None:
            value = taken(group, kw)  # popped before the rest is passed on
            return fn(**kw, **{name: value})

        wrapper.__signature__ = signature.replace(parameters=params + option_parameters(options))
        return wrapper

    return decorate


def _execute(cfg: RunConfig | None, results_dir: Path, cache_dir: Path, train_only: bool = False,
             resume: Path | None = None, tracking: Tracking = Tracking(), execution: Execution = Execution()) -> Path:
    from adbench import api
    from adbench.results import read_run_config

    if cfg is not None:  # names first, before torch is imported: a typo is refused in under a second
        api.check_component_names(cfg)
    executor = execution.build()
    name = (cfg or read_run_config(resume)).runtime.name
    tracker = tracking.open(name, Path(resume).parent if resume else results_dir)
    outcome = api.run(cfg, results_dir, cache_dir, resume, tracker, executor, train_only,
                      on_folder=lambda folder: err.print(f"run folder: {folder}", soft_wrap=True))
    if not train_only and not outcome.results.empty:
        _finish(outcome.folder, outcome.results.to_dict("records"))
    outcome.check()
    return outcome.folder


def _finish(run_dir: Path, rows: list[dict]) -> None:
    import pandas as pd

    from adbench.atomic import atomic_write_text
    from adbench.reporting.tables import averaged_table, footnote, markdown_table, rich_table

    frame = pd.DataFrame(rows)
    atomic_write_text(run_dir / "table.md", markdown_table(frame))
    if out.is_terminal:  # a rich table on a terminal; Markdown when piped (to a file, a notebook)
        out.print(rich_table(averaged_table(frame), "Mean over categories (per category: table.md)"))
        out.print(footnote(frame), soft_wrap=True, highlight=False)
    else:
        print(markdown_table(frame, per_category=False))
    err.print(f"results: {run_dir / 'metrics.parquet'}, table: {run_dir / 'table.md'}", soft_wrap=True)
    from adbench.engine.submission import incomplete

    for line in incomplete(run_dir):
        err.print(f"[yellow]warning:[/] {line}", soft_wrap=True)


@app.command()
@run_options
def train(cfg: RunConfig | None, results_dir: Path, cache_dir: Path, resume: Path | None, tracking: Tracking,
          execution: Execution) -> None:
    """Train the noise net of every category; `adbench evaluate RUN_DIR` scores them later."""
    _execute(cfg, results_dir, cache_dir, train_only=True, resume=resume, tracking=tracking, execution=execution)


@app.command()
@run_options
def run(cfg: RunConfig | None, results_dir: Path, cache_dir: Path, resume: Path | None, tracking: Tracking,
        execution: Execution) -> None:
    """Train and evaluate: results (Parquet, CSV) and a Markdown table in a new run folder; resumable
    (`--resume RUN_DIR` keeps and skips the cells a killed run finished)."""
    _execute(cfg, results_dir, cache_dir, resume=resume, tracking=tracking, execution=execution)


@app.command()
@guarded
@with_options(Tracking)
def evaluate(run_dir: Annotated[Path, typer.Argument(help="Run folder written by `adbench train`.")],
             cache_dir: Annotated[Path | None, Opt("--cache-dir", help="Feature cache.")] = None,
             tracking: Tracking = Tracking()) -> None:
    """Score the test sets with the trained models of a run folder (trains any that are missing)."""
    _execute(None, DEFAULT_RESULTS, cache_dir or cache_dir_default(), resume=run_dir, tracking=tracking)


DEMO_PRESET = Path(__file__).parent / "presets" / "demo.yaml"


def demo_config(quick_run: bool = False) -> RunConfig:
    """The embedded default (adbench/presets/demo.yaml); ``quick_run``: as ``--quick`` (``config.quick``)."""
    cfg = load_config(DEMO_PRESET)
    return quick(cfg) if quick_run else cfg


@app.command()
@guarded
@with_options(Tracking)
def demo(quick_run: Annotated[bool, Opt("--quick", help=QUICK_HELP)] = False,
         results_dir: Annotated[Path, Opt("--results-dir")] = DEFAULT_RESULTS,
         cache_dir: Annotated[Path | None, Opt("--cache-dir")] = None, tracking: Tracking = Tracking()) -> None:
    """Run the embedded default end to end: synthetic data, Lite0 features, three scorers."""
    _execute(demo_config(quick_run), results_dir, cache_dir or cache_dir_default(), tracking=tracking)


@app.command()
@guarded
@with_options(Execution)
@with_options(Tracking)
def grid(file: Annotated[Path, typer.Argument(help="Grid YAML (base config, axes, quick overrides, quick_axes).")],
         set_: Annotated[list[str] | None, Opt("--set", help="key=value override of the base (repeatable); "
                                                "fixes an axis to one value.")] = None,
         quick: Annotated[bool, Opt("--quick", help="Apply the grid's quick overrides (or --quick's 20 epochs when "
                                    "it has none) and quick_axes "
                                                    "(tiny sizes).")] = False,
         dry_run: Annotated[bool, Opt("--dry-run", help="Print the plan and stop.")] = False,
         nproc_per_node: Annotated[int | None, Opt("--nproc-per-node", min=1, help=NPROC_HELP)] = None,
         results_dir: Annotated[Path, Opt("--results-dir")] = DEFAULT_RESULTS,
         cache_dir: Annotated[Path | None, Opt("--cache-dir")] = None,
         tracking: Tracking = Tracking(), execution: Execution = Execution()) -> None:
    """Run an ablation grid; resumable: finished cells are kept and skipped when started again (with
    `--executor ray`, on every GPU of this machine or a cluster)."""
    from adbench import api
    from adbench.engine.grid import load_grid

    nproc = [f"runtime.nproc_per_node={nproc_per_node}"] if nproc_per_node is not None else []
    spec = load_grid(file, [*(set_ or []), *nproc], quick)
    executor = execution.build()
    tracker = None if dry_run else tracking.open(spec.name, results_dir)

    def show(runner: Any, plan: dict[str, Any]) -> None:
        if not err.is_terminal:  # a log: one greppable line
            err.print(f"grid {runner.spec.name} -> {runner.grid_dir}: "
                      + ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in plan.items()), soft_wrap=True)
            return
        table = Table(title=f"grid {runner.spec.name} -> {runner.grid_dir}", title_justify="left")
        for key in plan:
            table.add_column(key.replace("_", " "), justify="right")
        table.add_row(*map(str, plan.values()))
        err.print(table)

    outcome = api.grid(spec, results_dir=results_dir, cache_dir=cache_dir or cache_dir_default(), tracker=tracker,
                       executor=executor, on_plan=show, dry_run=dry_run)
    if dry_run:
        return
    if outcome.results.empty:
        raise AdbenchError(f"No cell of grid {spec.name} finished; see {outcome.folder / 'cells.jsonl'}.")
    _finish(outcome.folder, outcome.results.to_dict("records"))
    if outcome.failed:
        err.print(f"[red]{len(outcome.failed)} cell(s) failed[/]; errors are in {outcome.folder / 'cells.jsonl'}",
                  soft_wrap=True)


@app.command()
@guarded
@with_options(Execution)
@with_options(Tracking)
def study(file: Annotated[Path, typer.Argument(help="Study YAML (base config, search space, objective).")],
          quick: Annotated[bool, Opt("--quick", help="Apply the study's quick overrides (or --quick's 20 epochs "
                                     "when it has none) and run its quick_trials (3) trials.")] = False,
          set_: Annotated[list[str] | None, Opt("--set", help="key=value override of the study's base config "
                                                "(repeatable); a changed base is another study.")] = None,
          storage: Annotated[str | None, Opt("--storage", help="Optuna RDB URL (e.g. postgresql://...) or a "
                                             "journal file (*.log); default SQLite in the study folder.")] = None,
          n_trials: Annotated[int | None, Opt("--n-trials", help="Override the file's n_trials.")] = None,
          new_name: Annotated[str | None, Opt("--new-name", help="Run the spec as a new study of this name (the "
                                              "stored one of the file's name was made from another spec).")] = None,
          force: Annotated[bool, Opt("--force", help="Delete the stored study of this name first, and start "
                                     "again.")] = False,
          evaluate_best: Annotated[bool, Opt("--evaluate-best", help="Do not search: evaluate the best trial's "
                                             "config on the TEST set (the explicit final step).")] = False,
          results_dir: Annotated[Path, Opt("--results-dir")] = DEFAULT_RESULTS,
          cache_dir: Annotated[Path | None, Opt("--cache-dir")] = None,
          tracking: Tracking = Tracking(),
          workers: Annotated[int, Opt("--workers", min=1, help="Optuna workers, as Ray tasks (--executor ray) "
                                      "sharing the study's storage.")] = 1,
          execution: Execution = Execution()) -> None:
    """Optuna study on a validation split carved from training normals (never the test set)."""
    from adbench import api
    from adbench.engine.study import load_study

    name = checked_name(new_name, "--new-name") if new_name else load_study(file, quick, set_).name
    done = api.study(file, set_, quick, storage, n_trials, new_name, force, evaluate_best, results_dir,
                     cache_dir or cache_dir_default(), tracking.open(name, results_dir), execution.build(), workers,
                     on_best=lambda best: err.print(f"best trial parameters: {best}; evaluating on the test set",
                                                    soft_wrap=True))
    if done.best_run is not None:
        if not done.best_run.results.empty:
            _finish(done.best_run.folder, done.best_run.results.to_dict("records"))
        done.best_run.check()
        return
    table = Table(title_justify="left", title=f"study {name}: {len(done.trials)} trials "
                                              f"({done.folder / 'trials.csv'})")
    for column in done.trials.columns:
        table.add_column(str(column), justify="left" if column == "state" else "right")
    for row in done.trials.itertuples(index=False):
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    err.print(table)
    for plot, why in done.skipped_figures.items():
        err.print(f"[yellow]no {plot} plot:[/] {escape(why)}", soft_wrap=True)
    out.print(f"best parameters (validation {done.objective}): {done.best}")
    err.print(f"study folder: {done.folder}; plots: {', '.join(map(str, done.figures)) or 'none'}",
              soft_wrap=True)


def parse_timesteps(text: str) -> list[int]:
    """``"50,100,250"`` or a range ``"50:950:100"`` (start:stop:step, stop included when on the grid)."""
    if ":" in text:
        try:
            start, stop, step = (int(x) for x in text.split(":"))
        except ValueError:
            raise AdbenchError(f"--t range {text!r} must be start:stop:step") from None
        timesteps = list(range(start, stop + 1, step)) if step > 0 else []
    else:
        try:
            timesteps = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise AdbenchError(f"--t {text!r} must be integers separated by commas") from None
    if not timesteps:
        raise AdbenchError(f"--t {text!r} gives no timestep: a range start:stop:step needs step > 0 and "
                           "start <= stop, e.g. 50:950:100")
    return timesteps


@app.command("sweep-t")
@guarded
@with_options(Execution)
@with_options(Tracking)
def sweep_t(config: Annotated[Path | None, typer.Argument(help="YAML run config (the model to sweep).")] = None,
            from_run: Annotated[Path | None, Opt("--from-run", help="Sweep the trained model(s) of this run or grid "
                                                 "folder (its config) instead of training them again.")] = None,
            cell: Annotated[int | None, Opt("--cell", min=0, help="With --from-run GRID_FOLDER: the cell whose "
                                            "configuration is swept, over every category the grid scored with it "
                                            "(`adbench config --grid` lists the cells); needed when the grid trained "
                                            "several configurations.")] = None,
            t: Annotated[str | None, Opt("--t", help="Timesteps: 50,250,500 or a range 50:950:100 (the default; "
                                        "with --quick 250,500,750).")] = None,
            scorer: Annotated[list[str] | None, Opt("--scorer", "-s", help="Scorer(s) with a t argument.")] = None,
            set_: Annotated[list[str] | None, Opt("--set", help="key=value override of the config.")] = None,
            quick_run: Annotated[bool, Opt("--quick", help=QUICK_HELP)] = False,
            results_dir: Annotated[Path, Opt("--results-dir")] = DEFAULT_RESULTS,
            cache_dir: Annotated[Path | None, Opt("--cache-dir")] = None,
            tracking: Tracking = Tracking(), execution: Execution = Execution()) -> None:
    """Timestep sensitivity: score one trained model per category at many t; table and metric-vs-t plot."""
    from adbench import api
    from adbench.engine.grid import sweep_source, sweep_t_grid

    if (config is None) == (from_run is None):
        raise AdbenchError("sweep-t needs a config file or --from-run RUN_DIR (one of them)")
    if cell is not None and from_run is None:
        raise AdbenchError("--cell chooses a cell of --from-run GRID_FOLDER")
    cache = cache_dir or cache_dir_default()
    cfg = load_config(config, parse_sets(set_)) if config else \
        sweep_source(from_run, cell, cache).updated(parse_sets(set_))
    cfg = quick(cfg) if quick_run and from_run is None else cfg  # a trained model is swept as it is
    timesteps = parse_timesteps(t or ("250,500,750" if quick_run else "50:950:100"))
    scorers = scorer or ["osd_irf_mean", "osd_irf_noisy"]
    name = sweep_t_grid(cfg, scorers, timesteps).name

    def say(shared: list[Path], trainings: int) -> None:
        err.print(f"{len(shared)} trained model(s) of {from_run} shared; {trainings} to train", soft_wrap=True)

    executor = execution.build()  # its options checked before the tracker opens
    outcome = api.sweep_t(cfg, timesteps, scorers, from_run, results_dir, cache, tracking.open(name, results_dir),
                          executor, say)
    if outcome.results.empty:
        raise AdbenchError(f"No cell finished; see {outcome.folder / 'cells.jsonl'}.")
    _finish(outcome.folder, outcome.results.to_dict("records"))
    err.print(f"plots: {', '.join(map(str, outcome.figures))}", soft_wrap=True)


@app.command()
@guarded
def report(results: Annotated[list[Path], typer.Argument(help="Run or grid folders (or metrics.parquet files).")],
           fmt: Annotated[str, Opt("--format", help="md, latex or both.")] = "both",
           out_path: Annotated[Path, Opt("--out", help="Output path without suffix.")] = Path("reports/table"),
           per_category: Annotated[bool, Opt("--per-category/--no-per-category")] = True,
           caption: Annotated[str | None, Opt("--caption", help="LaTeX: text that leads each caption.")] = None,
           page: Annotated[str, Opt("--page", help="LaTeX: the paper template whose widths a table must fit: "
                                    "article (two-column 10 pt), cvpr (also ICCV, WACV), icml, neurips (also ICLR), "
                                    "lncs (ECCV, MICCAI), or COLUMN,TEXT widths in pt. A table goes in one column "
                                    "when it fits there at a scale of 0.7 or more, else across the page, scaled "
                                    "to no less than 0.7; wider ones are split by columns, between spanning "
                                    "headers.")] = "article",
           notes: Annotated[str, Opt("--notes", help="LaTeX: where a table's notes go: below (a footnote block "
                                     "under the table, a short caption), caption, or short (one line of units "
                                     "and marks under the table, the full notes kept as comments above it, "
                                     "the labels every row shares in the caption).")] = "below",
           rename: Annotated[list[str] | None, Opt("--rename", help="SHOWN_NOW=WANTED (repeatable): the name a "
                                                   "label, header or method takes in the tables, e.g. "
                                                   "'osd_irf_mean=OSD-IRF' or 'feature norm=Norm' (split at the "
                                                   "last =; marks such as † are kept).")] = None,
           significance: Annotated[str | None, Opt("--significance", help="A method (as the per-category layout "
                                                   "names it, e.g. osd_irf_mean(t=500)): every other method's image "
                                                   "AU-ROC per category is tested against it (DeLong's paired test "
                                                   "on the same images) and marked § where p < 0.05.")] = None,
           metrics: Annotated[str | None, Opt("--metrics", help="Comma-separated columns of the methods layout, "
                                              "in the papers' order, e.g. image_auroc,pixel_aupro,mad,fps "
                                              "(default: all).")] = None,
           layout: Annotated[str, Opt("--layout", help="methods (methods x metrics, the papers' main tables), "
                                      "categories (categories x methods for one --metric, per-class tables) or "
                                      "bmad (InvAD's BMAD table: det. and loc. per dataset).")
                             ] = "methods",
           metric: Annotated[str, Opt("--metric", help="The metric of --layout categories, e.g. image_auroc, "
                                      "pixel_aupro, mad.")] = "image_auroc",
           fps_records: Annotated[list[Path] | None, Opt("--fps", help="`adbench fps` records (JSON, repeatable): "
                                                         "the FPS column comes from them where they match a row's "
                                                         "backbone, noise net and scorer.")] = None,
           label: Annotated[str | None, Opt("--label", help="LaTeX label (default tab:<name of --out>).")] = None,
           paper: Annotated[str | None, Opt("--paper", help="A transcribed paper table (e.g. osd_irf/table1, "
                                            "invad/table2; `none` for none): its values and Δ (ours - paper) go "
                                            "under the rows that reproduce them. Default: the table the grid's "
                                            "preset names.")] = None,
           reported: Annotated[bool, Opt("--reported", help="Add the paper's other methods as rows marked "
                                         "(reported), as printed; never ranked.")] = False,
           figures: Annotated[bool, Opt("--figures", help="Anomaly-map figures (image, mask, overlay) "
                                        "of the samples each run kept (save_maps), side by side per category, "
                                        "and metric against t where the results sweep t.")] = False,
           figure_width: Annotated[str, Opt("--figure-width", help="column or page: the width of --page that "
                                            "metric-vs-t figures are drawn at (7 pt text, printed unscaled).")
                                   ] = "page") -> None:
    """Tables from stored results only (nothing is recomputed): Markdown and/or LaTeX (booktabs)."""
    from adbench import api

    done = api.report(results, out_path, fmt, layout, metric, per_category, caption, label, paper, reported,
                      fps_records, figures, figure_width, page, notes, parse_renames(rename),
                      [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None, significance)
    for name in done.unused_renames:
        err.print(f"[yellow]warning:[/] --rename {name!r} matched no label, header or method of these tables",
                  soft_wrap=True)
    for notice in done.notices:
        err.print(f"[yellow]note:[/] {escape(notice)}", soft_wrap=True)
    if done.missing_maps:
        err.print(f"[yellow]warning:[/] {len(done.missing_maps)} kept map file(s) missing or unreadable, e.g. "
                  f"{done.missing_maps[0]}", soft_wrap=True)
    err.print(f"wrote {', '.join(map(str, done.written))} from {done.n_rows} result rows", soft_wrap=True)


@app.command("config")
@guarded
def show_config(
        config: Annotated[Path | None, typer.Argument(help="A YAML run config (with --set).")] = None,
        set_: Annotated[list[str] | None, Opt("--set", help="key=value override (repeatable).")] = None,
        run_dir: Annotated[Path | None, Opt("--run", help="A run folder: the config it ran with.")] = None,
        grid_file: Annotated[Path | None, Opt("--grid", help="A grid YAML: its cells, or one with --cell.")] = None,
        cell: Annotated[int | None, Opt("--cell", min=0, help="The grid cell to print (its number in the list "
                                       "`--grid` alone prints).")] = None,
        study_file: Annotated[Path | None, Opt("--study", help="A study YAML: a trial's config with --trial.")] = None,
        trial: Annotated[int | None, Opt("--trial", min=0, help="The study trial to print.")] = None,
        storage: Annotated[str | None, Opt("--storage", help="The study's storage (default: SQLite in its "
                                           "folder under --results-dir).")] = None,
        quick_run: Annotated[bool, Opt("--quick", help="As the command would run it with --quick.")] = False,
        results_dir: Annotated[Path, Opt("--results-dir")] = DEFAULT_RESULTS,
        cache_dir: Annotated[Path | None, Opt("--cache-dir")] = None) -> None:
    """Print the fully resolved config (every default filled in, as YAML) of a run config, a run folder, a
    grid cell or a study trial: what a run, grid or study would use, before or after it ran."""
    import yaml

    given = [name for name, v in (("CONFIG", config), ("--run", run_dir), ("--grid", grid_file),
                                  ("--study", study_file)) if v is not None]
    if len(given) != 1:
        raise AdbenchError("config needs one of CONFIG, --run RUN_DIR, --grid GRID.yaml or --study STUDY.yaml"
                           + (f" (got {', '.join(given)})" if given else ""))
    if grid_file is not None:
        found = grid_cell_config(grid_file, cell, set_, quick_run, results_dir, cache_dir or cache_dir_default())
        if found is None:
            return
        cfg, head = found
    elif study_file is not None:
        cfg, head = study_trial_config(study_file, trial, storage, set_, quick_run, results_dir)
    elif run_dir is not None:
        from adbench.results import read_run_config

        cfg, head = read_run_config(run_dir), f"run folder {run_dir}"
    else:
        cfg = load_config(config, parse_sets(set_))
        cfg, head = quick(cfg) if quick_run else cfg, str(config)
    print(f"# {head}\n" + yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")


def grid_cell_config(file: Path, cell: int | None, sets: list[str] | None, quick_run: bool, results_dir: Path,
                     cache_dir: Path) -> tuple[RunConfig, str] | None:
    """The config of ``cell`` of the grid in ``file``; without ``cell``, the list of its cells is printed."""
    from adbench import api
    from adbench.engine.build import scorer_label

    cells = api.grid(file, sets, quick_run, results_dir, cache_dir, dry_run=True).cells
    if cell is None:
        for i, c in enumerate(cells):
            out.print(f"{i:>4}  {c.category}  {scorer_label(c.spec)}  seed {c.cfg.seed}  {c.key}", highlight=False)
        err.print(f"{len(cells)} cells; `adbench config --grid {file} --cell N` prints one", soft_wrap=True)
        return None
    if cell >= len(cells):
        raise AdbenchError(f"--cell {cell}: the grid has {len(cells)} cells (0 to {len(cells) - 1})")
    return cells[cell].cfg, f"cell {cell} of {len(cells)}: {cells[cell].category} {scorer_label(cells[cell].spec)}"


def study_trial_config(file: Path, trial: int | None, storage: str | None, sets: list[str] | None, quick_run: bool,
                       results_dir: Path) -> tuple[RunConfig, str]:
    """The config of ``trial`` of the study in ``file`` and the line that heads it."""
    from adbench.engine.study import trial_config

    if trial is None:
        raise AdbenchError("--study needs --trial N (`adbench study` lists the trials and their numbers)")
    cfg, params = trial_config(file, trial, storage, sets, quick_run, results_dir)
    return cfg, f"study {cfg.runtime.name}, trial {trial}: {params}"


data_app = typer.Typer(help="Datasets: fetch a public one into the layout its loader reads.", no_args_is_help=True,
                       rich_markup_mode=None)
app.add_typer(data_app, name="data")


@data_app.command("fetch")
@guarded
def data_fetch(name: Annotated[str, typer.Argument(help="mvtec, visa, btad or mvtec_ad2 (downloaded); mpdd, "
                                                   "mvtec_loco, real_iad (a form or login: says where and how).")],
               root: Annotated[Path, Opt("--root", help="Folder the dataset goes into (then --data-root ROOT).")],
               url: Annotated[str | None, Opt("--url", help="A mirror of the same archive (its SHA-256 must still "
                                              "match the published one).")] = None) -> None:
    """Download (resumably), verify (SHA-256) and unpack a public dataset into ROOT; the licence is printed
    first. Run it again after an interruption: it resumes where it stopped."""
    from adbench.data.fetch import fetch
    from adbench.progress import progress_bar

    with progress_bar() as bar:
        task = bar.add_task(f"{name}: download (MB)", total=None)
        fetch(name, root, url, say=lambda line: err.print(line, soft_wrap=True, markup=False, highlight=False),
              progress=lambda done, total: bar.update(task, completed=done / 1e6, total=total / 1e6 or None))
    err.print(f"{name} is in {root}: use --data-root {root}", soft_wrap=True, markup=False, highlight=False)


def parse_renames(items: list[str] | None) -> dict[str, str]:
    """``--rename`` items ``SHOWN_NOW=WANTED`` as a mapping (split at the last ``=``: labels hold ``=``)."""
    names = {}
    for item in items or ():
        shown, eq, wanted = item.rpartition("=")
        if not eq or not shown.strip() or not wanted.strip():
            raise AdbenchError(f"--rename {item!r}: give SHOWN_NOW=WANTED, e.g. 'osd_irf_mean=OSD-IRF'")
        names[shown.strip()] = wanted.strip()
    return names


@app.command()
@guarded
def fps(config: Annotated[Path | None, typer.Argument(help="YAML run config (backbone, noise net, scorers).")] = None,
        backbone: Annotated[str | None, Opt("--backbone")] = None,
        noise_net: Annotated[str | None, Opt("--noise-net")] = None,
        scorer: Annotated[list[str] | None, Opt("--scorer", "-s", help="Scorer(s), e.g. invad:steps=3.")] = None,
        batch_size: Annotated[int, Opt("--batch-size", min=1, help="Images per batch (the papers use 64).")] = 64,
        warmup: Annotated[int, Opt("--warmup", min=0, help="Untimed iterations first.")] = 3,
        iters: Annotated[int, Opt("--iters", min=1, help="Timed iterations.")] = 10,
        compile_model: Annotated[bool, Opt("--compile", help="torch.compile backbone and noise net.")] = False,
        precision: Annotated[str | None, Opt("--precision", help=PRECISION_HELP)] = None,
        backbone_precision: Annotated[str | None, Opt("--backbone-precision", help=BACKBONE_PRECISION_HELP)] = None,
        device: Annotated[str | None, Opt("--device")] = None,
        results_dir: Annotated[Path, Opt("--results-dir")] = DEFAULT_RESULTS) -> None:
    """Images/s of the full pipeline and of the scorer alone, batch-1 latency, FLOPs per image (torch's
    count) and the TFLOP/s achieved, as a share of a matrix product's peak measured in the same run."""
    from adbench import api

    cfg = config_with_flags(config, {
        "backbone.name": backbone, "noise_net.name": noise_net, "runtime.device": device,
        "noise_net.precision": precision, "backbone.precision": backbone_precision,
        "scoring.scorers": [parse_scorer(s) for s in scorer] if scorer else None})
    done = api.fps(cfg, batch_size, warmup, iters, compile_model, results_dir)
    rows = done.records
    first = rows[0]
    table = Table(title=f"FPS on {first['device']}: {first['precision']}, batch {batch_size}, "
                  f"compile {'on' if compile_model else 'off'}, torch {first['torch']}, "
                  f"host allocator {first['host_allocator']}; peak {first['peak_tflop_s']:.1f} TFLOP/s "
                  f"(a square {first['precision']} matrix product, this run)", title_justify="left")
    for col in ("scorer", "NFE", "pipeline img/s", "scorer img/s", "latency b=1 (ms)", "GFLOP/img backbone",
                "GFLOP/img scorer", "pipeline TFLOP/s", "scorer TFLOP/s", "pipeline % peak", "scorer % peak"):
        table.add_column(col, justify="left" if col == "scorer" else "right")
    for r in rows:
        table.add_row(r["scorer"], str(r["nfe"]), f"{r['pipeline_images_per_s']:.1f}",
                      f"{r['scorer_images_per_s']:.1f}", f"{r['latency_ms_batch1']:.1f}", f"{r['backbone_gflop']:.2f}",
                      f"{r['scorer_gflop']:.2f}", f"{r['pipeline_tflop_s']:.2f}", f"{r['scorer_tflop_s']:.2f}",
                      f"{100 * r['pipeline_peak_fraction']:.0f}", f"{100 * r['scorer_peak_fraction']:.0f}")
    out.print(table)
    err.print(f"records: {done.path}", soft_wrap=True)


@app.command()
def schema(out_path: Annotated[Path | None, Opt("--out", help="Write it to this file (default: print it).")] = None,
           rows: Annotated[bool, Opt("--rows", help="The schema of a stored result row instead (the columns of "
                                     "`adbench list columns`).")] = False) -> None:
    """JSON Schema of a YAML run config, for editors: keys, types, defaults, choices, registered names."""
    import json

    from adbench.atomic import atomic_write_text
    from adbench.columns import json_schema
    from adbench.schema import config_schema

    text = json.dumps(json_schema() if rows else config_schema(), indent=1)
    if out_path is None:
        print(text)
    else:
        atomic_write_text(out_path, text + "\n")
        err.print(f"schema: {out_path}", soft_wrap=True)


@app.command()
@guarded
def toy(t: Annotated[int, Opt("--t", help="Timestep of the one-step IRF.")] = 250,
        seed: Annotated[int, Opt("--seed")] = 0,
        as_json: Annotated[bool, Opt("--json", help="Print one JSON object {mean_auroc, noisy_auroc}.")] = False,
        out_path: Annotated[Path, Opt("--out", help="Figure path (PNG and PDF are written).")] = Path(
            "reports/toy_irf.png")) -> None:
    """OSD-IRF's 1-D toy study (sec. 3.3): mean-path vs noisy-state IRF AU-ROC and the Fig. 2 trajectories."""
    import json

    from adbench.engine.toy import run_toy
    from adbench.reporting.plots import plot_toy_trajectories

    result = run_toy(t=t, seed=seed)
    figures = plot_toy_trajectories(result, out_path)
    if as_json:
        print(json.dumps({"mean_auroc": result.mean_auroc, "noisy_auroc": result.noisy_auroc}))
    else:
        out.print(f"t={t}: mean-path IRF AU-ROC {result.mean_auroc:.4f}, noisy-state IRF AU-ROC "
                  f"{result.noisy_auroc:.4f}")
    err.print(f"figure: {', '.join(map(str, figures))}", soft_wrap=True)


def noise_net_details() -> tuple[list[str], Callable[[str], list[str]]]:
    """Columns of `adbench list noise-nets`: the parameter count, the official code's (with the modules its
    forward never calls, named) and InvAD Table 8's."""
    from adbench.noise_nets import B4_CHANNELS, parameter_count
    from adbench.registry import NOISE_NETS

    def row(name: str) -> list[str]:
        params, card = parameter_count(name), NOISE_NETS.get(name)
        unused, extra = card.unused_official or ("", 0)
        paper = card.paper_params_m
        official = f"{(params + extra) / 1e6:.2f}M (+{extra / 1e6:.2f}M: {unused}, never called)" if unused else \
            f"{params / 1e6:.2f}M (the same)" if paper else ""
        return [f"{params / 1e6:.2f}M", official, f"{paper}M" if paper else ""]

    return [f"params (C={B4_CHANNELS})", "official code", "InvAD Table 8"], row


def backbone_details() -> tuple[list[str], Callable[[str], list[str]]]:
    """Columns of `adbench list backbones`: the weights a name loads and the input statistics that come
    with them."""
    from adbench.backbones.identity import weights_info

    def row(name: str) -> list[str]:
        if name.endswith(":*"):
            return ["the model's default timm tag (name one: timm:<arch>.<tag>)", "the tag's own"]
        info = weights_info(name)
        return [info.identity, f"{list(info.mean)} / {list(info.std)}"]

    return ["pretrained weights", "input mean / std (from the weights)"], row


DETAILS = {"noise-nets": noise_net_details, "backbones": backbone_details}  # they load torch: one kind only


@app.command("list")
@guarded
def list_components(kind: Annotated[str | None, typer.Argument(
        help="datasets, backbones, noise-nets, scorers or columns (default: all components). One kind adds its "
             "details: parameter counts for noise nets, weights and input statistics for backbones; columns: every "
             "column of a result row.")] = None) -> None:
    """Show registered components with one-line descriptions (or the result rows' columns)."""
    from adbench.registry import REGISTRIES

    if kind == "columns":
        return list_columns()
    if kind is not None and kind not in REGISTRIES:
        raise AdbenchError(f"Unknown kind {kind!r}; choose from {', '.join(REGISTRIES)}, columns.")
    for name, registry in REGISTRIES.items():
        if kind not in (None, name):
            continue
        table = Table(title=name, title_justify="left")
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("description")
        headers, details = DETAILS[name]() if kind in DETAILS else ([], lambda _: [])
        for header in headers:
            table.add_column(header, overflow="fold")
        for entry in registry.entries():
            table.add_row(entry.name, entry.description, *details(entry.name))
        out.print(table)
    if kind is None:
        out.print("`adbench list noise-nets` adds parameter counts, `adbench list backbones` the weights and "
                  "input statistics.")



def list_columns() -> None:
    """`adbench list columns`: the result-row catalogue, group by group."""
    from adbench.columns import GROUPS, ROW_VERSION, catalogue

    for group, title in GROUPS.items():
        table = Table(title=f"{title} ({group})", title_justify="left")
        for header in ("column", "type", "unit", "meaning"):
            table.add_column(header, style="bold" if header == "column" else None, overflow="fold")
        for c in (c for c in catalogue() if c.group == group):
            extra = [*(["in mAD"] if c.in_mad else []), *([f"passes: {', '.join(c.passes)}"] if c.passes else []),
                     *(["only where asked"] if not c.always else [])]
            table.add_row(c.key, c.type.__name__ if c.type is not object else "any", c.unit,
                          c.note + (f" ({'; '.join(extra)})" if extra else ""))
        out.print(table)
    out.print(f"Row version {ROW_VERSION}; older rows are upgraded when read. JSON Schema: adbench schema --rows")
