"""Where a grid's work units run: one after another in this process (``local``, the default), or as Ray
tasks on every GPU of a node or a cluster (``ray``, the optional extra ``adbench-uiad[ray]``). Either way each
unit's records come back to this process as the unit finishes, and this process alone appends them to the
grid's ``cells.jsonl``, so an interrupted grid resumes the same way under both. A unit whose noise net trains
on several processes (``runtime.nproc_per_node``) asks Ray for that many GPUs and starts them itself.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adbench.engine.context import ContextCache
from adbench.engine.execute import WorkUnit, error_records, execute
from adbench.engine.keys import context_key
from adbench.errors import AdbenchError
from adbench.progress import progress_bar

EXECUTORS = ("local", "ray")


class LocalExecutor:
    """The units one after another, in this process (on its device)."""

    def records(self, units: list[WorkUnit], contexts: ContextCache, train_only: bool) -> Iterator[dict[str, Any]]:
        for unit in units:
            yield from execute(unit, contexts, train_only)


def extract_features(units: list[WorkUnit], run_dir: str, cache_dir: str, threads: int) -> str:
    """In a Ray worker: the backbone features every unit of one context (dataset and backbone) needs, into
    the shared feature cache, so that each image passes the backbone once however many units use it.
    Returns '' or the error, never raises: a unit meeting the same error records it against its cells."""
    import torch

    from adbench.engine.context import eval_set, training_features

    torch.set_num_threads(threads)
    contexts = ContextCache(Path(run_dir), Path(cache_dir))
    try:
        for unit in units:
            ctx = contexts.get(unit.cells[0].cfg)
            for category in unit.categories:
                training_features(ctx, category)
                eval_set(ctx, category)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        return f"{type(exc).__name__}: {exc}"
    return ""


class Board:
    """Where the unit tasks run, for the driver's progress bar (a Ray actor): a task tells it its node as it
    starts (again when retried), the driver takes the unit off when its result is in."""

    def __init__(self) -> None:
        self.nodes: dict[int, str] = {}

    def started(self, unit: int, node: str) -> None:
        self.nodes[unit] = node

    def finished(self, unit: int) -> None:
        self.nodes.pop(unit, None)

    def running(self) -> str:
        """``node: n`` for each node with a running unit, or ``none started yet``."""
        counts = Counter(self.nodes.values())
        return ", ".join(f"{node}: {n}" for node, n in sorted(counts.items())) or "none started yet"


class UnitOutOfMemory(RuntimeError):
    """A unit's cell ran out of GPU memory: the Ray task is run again (perhaps on a freer GPU)."""


def run_unit(unit: WorkUnit, run_dir: str, cache_dir: str, train_only: bool, threads: int, features: str = "",
             board: Any = None, index: int = 0) -> list[dict[str, Any]]:
    """One work unit in a Ray worker, on as many CPU threads as its task reserved CPUs (Ray does not always
    set that), once its context's ``features`` task has run; it tells the ``board`` (a Board actor) its
    node. Returns its records, as ``execute`` yields them; a cell out of GPU memory raises UnitOutOfMemory
    instead, so that Ray retries the whole unit."""
    import torch

    if board is not None:
        board.started.remote(index, socket.gethostname())
    torch.set_num_threads(threads)
    records = list(execute(unit, ContextCache(Path(run_dir), Path(cache_dir)), train_only))
    oom = [r["error"] for r in records if r["status"] == "error"
           and r["error"].startswith(f"{torch.OutOfMemoryError.__name__}: ")]
    if oom:
        raise UnitOutOfMemory(oom[0].splitlines()[0])
    return records


def run_study_worker(spec: Any, results_dir: str, cache_dir: str, storage: str, threads: int,
                     tracking: tuple[list[str] | None, str | None]) -> None:
    """One Optuna worker of a study in a Ray worker: trials until the study has its ``n_trials`` (Optuna's
    storage coordinates the workers, as for workers started by hand)."""
    import torch

    from adbench.engine.study import StudyRunner
    from adbench.tracking import Tracker

    torch.set_num_threads(threads)
    loggers, uri = tracking
    tracker = Tracker(loggers, spec.name, Path(results_dir), uri)
    StudyRunner(spec, Path(results_dir), Path(cache_dir), storage, tracker).optimize()


def probe_folder(run_dir: str) -> str:
    """On one node: write, read back and remove a file in the results folder; '' when it works, else why."""
    path = Path(run_dir) / f".adbench-probe-{socket.gethostname()}-{os.getpid()}"
    try:
        path.write_text(path.name)
        ok = path.read_text() == path.name
        path.unlink()
        return "" if ok else "a file written there reads back different"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


@dataclass
class RayExecutor:
    """One Ray task per work unit, with the resources it asks for; a task whose worker dies, or whose cell
    runs out of GPU memory, is run again up to ``max_retries`` times, then its cells are recorded as failed
    and the grid goes on.

    ``address``: None starts a local Ray instance on this machine, ``auto`` joins the running cluster, or
    a cluster's address. ``gpus_per_task`` None: 1 when the cluster has GPUs, else 0.
    """

    address: str | None = None
    cpus_per_task: float = 1
    gpus_per_task: float | None = None
    max_retries: int = 2

    @property
    def threads(self) -> int:
        """The torch threads of a task: as many as the CPUs it reserves, at least one."""
        return max(1, int(self.cpus_per_task))

    def start(self) -> Any:
        try:
            import ray
        except ImportError:
            raise AdbenchError("--executor ray needs Ray: pip install 'adbench-uiad[ray]'") from None
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False)
        return ray

    def check_shared_folder(self, ray: Any, run_dir: Path) -> None:
        """Every node must read and write the results folder (a shared filesystem): say which cannot."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(num_cpus=0)(probe_folder)
        nodes = [n for n in ray.nodes() if n["Alive"]]
        answers = ray.get([probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                           .remote(str(run_dir)) for n in nodes])
        bad = [f"{n['NodeManagerAddress']} ({why})" for n, why in zip(nodes, answers, strict=True) if why]
        if bad:
            raise AdbenchError(f"{run_dir} must be on storage every Ray node shares; these nodes cannot use it: "
                               f"{', '.join(bad)}")

    def resources(self, ray: Any) -> dict[str, Any]:
        """A task's Ray options: the CPUs and GPUs it reserves, its retries."""
        gpus = self.gpus_per_task if self.gpus_per_task is not None else int(bool(ray.cluster_resources().get("GPU")))
        return {"num_cpus": self.cpus_per_task, "num_gpus": gpus, "max_retries": self.max_retries,
                "retry_exceptions": [UnitOutOfMemory]}

    @staticmethod
    def unit_resources(resources: dict[str, Any], unit: WorkUnit) -> dict[str, Any]:
        """A unit's task options: a noise net trained on ``runtime.nproc_per_node`` processes reserves that
        many times the CPUs and GPUs of one task (its processes are a torch process group inside the task,
        on the GPUs Ray gives it)."""
        n = unit.cells[0].cfg.runtime.nproc_per_node if unit.model_key is not None else None
        if not n:
            return resources
        return {**resources, "num_cpus": resources["num_cpus"] * n, "num_gpus": resources["num_gpus"] * n}

    def study_workers(self, spec: Any, results_dir: Path, cache_dir: Path, storage: str, workers: int,
                      tracking: tuple[list[str] | None, str | None]) -> None:
        """``workers`` Optuna workers of ``spec``'s study as Ray tasks on ``storage`` (a server database or a
        journal file every node sees); a worker that died is started again up to ``max_retries`` times."""
        ray = self.start()
        self.check_shared_folder(ray, Path(results_dir))
        task = ray.remote(**self.resources(ray))(run_study_worker)
        refs = [task.remote(spec, str(results_dir), str(cache_dir), storage, self.threads, tracking)
                for _ in range(workers)]
        errors = []
        for ref in refs:
            try:
                ray.get(ref)
            except ray.exceptions.RayError as exc:
                errors.append(str(exc).strip().splitlines()[0])
        if len(errors) == workers:
            raise AdbenchError(f"every study worker failed, first: {errors[0]}")
        for error in errors:
            warnings.warn(f"a study worker failed (the others went on): {error}", stacklevel=2)

    def records(self, units: list[WorkUnit], contexts: ContextCache, train_only: bool) -> Iterator[dict[str, Any]]:
        if not units:
            return
        ray = self.start()
        self.check_shared_folder(ray, contexts.run_dir)
        resources, threads = self.resources(ray), self.threads
        folders = str(contexts.run_dir), str(contexts.cache_dir)
        by_context: dict[str, list[WorkUnit]] = {}
        for unit in units:
            by_context.setdefault(context_key(unit.cells[0].cfg), []).append(unit)
        features = {key: ray.remote(**resources)(extract_features).remote(group, *folders, threads)
                    for key, group in by_context.items()}  # one backbone pass per image, before the units
        task, board = ray.remote(**resources)(run_unit), ray.remote(num_cpus=0)(Board).remote()
        ordered = [(key, unit) for key, group in by_context.items() for unit in group]
        pending = {task.options(**self.unit_resources(resources, unit))
                   .remote(unit, *folders, train_only, threads, features[key], board, i): (i, unit)
                   for i, (key, unit) in enumerate(ordered)}
        with progress_bar() as bar:
            progress = bar.add_task("", total=sum(len(u.cells) for u in units))
            while pending:
                bar.update(progress, description=f"ray: {len(pending)} of {len(units)} unit(s) left; running on "
                                                 f"{ray.get(board.running.remote())}")
                done, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)  # the bar refreshes meanwhile
                if not done:
                    continue
                index, unit = pending.pop(done[0])
                board.finished.remote(index)
                try:
                    records = ray.get(done[0])
                except ray.exceptions.RayError as exc:  # every try died (killed, node lost) or ran out of memory
                    cause = str(exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else exc).strip()
                    cause = cause.splitlines()[0]
                    records = error_records(unit.cells, RuntimeError(f"the Ray task failed {self.max_retries + 1} "
                                                                     f"time(s): {cause}"))
                bar.advance(progress, len(unit.cells))
                yield from records
