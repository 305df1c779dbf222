"""Optuna studies: validation split only, resume by name, journal storage, Pareto front, final test step."""

import re

import optuna
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from adbench.cli import app
from adbench.data.base import load_mask
from adbench.data.mvtec import MVTecLayout
from adbench.data.validation import CarvedValidation
from adbench.engine.study import WORKER_ATTR, StudyRunner, load_study

runner = CliRunner()


def study_file(path, data_root, **extra):
    spec = {
        "name": "tiny",
        "base": {"data": {"dataset": "mvtec", "root": str(data_root), "holdout_fraction": 0.2},
                 "categories": ["washer", "weave"], "backbone": {"name": "efficientnet_lite0", "image_size": 64},
                 "noise_net": {"name": "mlp_tiny"},
                 "scoring": {"scorers": [{"name": "osd_irf_mean"}], "eval_batch_size": 8, "fps_images": 2},
                 "train": {"epochs": 2, "batch_size": 4, "lr": 0.001, "warmup_epochs": 1}},
        "space": {"scorer.t": {"type": "int", "low": 100, "high": 900, "step": 100},
                  "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        "objective": "mad", "n_trials": 3, "validation": {"fraction": 0.4},
    }
    spec.update(extra)
    path.write_text(yaml.safe_dump(spec))
    return path


def test_carved_validation_never_touches_the_test_set(tiny_synthetic, tmp_path):
    base = MVTecLayout(tiny_synthetic)
    val = CarvedValidation(base, tmp_path, fraction=0.4, seed=0)
    train, test = val.train("washer"), val.test("washer")
    all_train = {s.image_path for s in base.train("washer")}
    test_files = {s.image_path for s in base.test("washer")}
    assert len(train) == 6 and {s.image_path for s in train} < all_train
    assert {s.label for s in test} == {0, 1} and not {s.image_path for s in test} & test_files
    normals = [s for s in test if s.label == 0]
    assert {s.image_path for s in normals} <= all_train - {s.image_path for s in train}
    for s in test:
        if s.label:
            assert load_mask(s, 64).any()
    again = CarvedValidation(base, tmp_path, fraction=0.4, seed=0).test("washer")
    assert [s.image_path for s in again] == [s.image_path for s in test]


def test_study_runs_resumes_and_evaluates_best_on_test_separately(tiny_synthetic, tmp_path):
    path = study_file(tmp_path / "s.yaml", tiny_synthetic)
    results = tmp_path / "r"
    first = runner.invoke(app, ["study", str(path), "--results-dir", str(results)])
    assert first.exit_code == 0, first.output
    study_dir = results / "study-tiny"
    storage = f"sqlite:///{study_dir / 'study.db'}"
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert len(study.trials) == 3 and (study_dir / "optimization_history.png").exists()
    trials = pd.read_csv(study_dir / "trials.csv")
    assert trials.columns.tolist() == ["number", "state", "validation mad", "scorer.t", "train.lr", "duration"]
    assert trials["validation mad"].tolist() == pytest.approx([t.value for t in study.trials])
    assert "Trial 0 finished" not in first.output  # Optuna's INFO lines do not interleave with adbench's
    assert not (study_dir / "param_importances.png").exists()  # 3 trials: importances would mean nothing
    assert "3 finished trial(s): importances need at least 5" in " ".join(first.output.split())
    assert not list(results.glob("tiny-best-*"))  # the test set is only used on request
    again = runner.invoke(app, ["study", str(path), "--results-dir", str(results)])
    assert again.exit_code == 0 and len(optuna.load_study(study_name="tiny", storage=storage).trials) == 3
    more = runner.invoke(app, ["study", str(path), "--n-trials", "4", "--results-dir", str(results)])
    assert more.exit_code == 0 and len(optuna.load_study(study_name="tiny", storage=storage).trials) == 4
    best = runner.invoke(app, ["study", str(path), "--evaluate-best", "--results-dir", str(results)])
    assert best.exit_code == 0, best.output
    (run_dir,) = results.glob("tiny-best-*")
    frame = pd.read_parquet(run_dir / "metrics.parquet")
    best_t = optuna.load_study(study_name="tiny", storage=storage).best_trial.params["scorer.t"]
    assert set(frame["scorer_label"]) == {f"osd_irf_mean(t={best_t})"} and len(frame) == 2


@pytest.mark.filterwarnings("ignore:The number of trials is too small")  # 2 complete trials: importances equal
def test_a_trial_out_of_gpu_memory_fails_alone(tiny_synthetic, tmp_path, dit_out_of_memory):
    path = study_file(tmp_path / "s.yaml", tiny_synthetic, name="oom", n_trials=4,
                      space={"noise_net.name": {"type": "categorical", "choices": ["mlp_tiny", "dit_tiny"]}})
    result = runner.invoke(app, ["study", str(path), "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="oom", storage=f"sqlite:///{tmp_path / 'study-oom' / 'study.db'}")
    by_net = {net: [t for t in study.trials if t.params["noise_net.name"] == net] for net in ("mlp_tiny", "dit_tiny")}
    assert by_net["mlp_tiny"] and by_net["dit_tiny"], "the sampler must try both nets"
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in by_net["mlp_tiny"])
    assert all(t.state == optuna.trial.TrialState.FAIL and t.user_attrs["fail_reason"] ==
               "out of GPU memory: CUDA out of memory. Tried to allocate 24.00 GiB" for t in by_net["dit_tiny"])
    assert len(dit_out_of_memory) == len(by_net["dit_tiny"])


@pytest.mark.slow
def test_multi_objective_with_journal_storage(tiny_synthetic, tmp_path):
    path = study_file(tmp_path / "s.yaml", tiny_synthetic, name="pareto", fps_objective=True, n_trials=2,
                      space={"scorer.t": {"type": "categorical", "choices": [200, 600]}})
    journal = tmp_path / "journal.log"
    result = runner.invoke(app, ["study", str(path), "--storage", str(journal), "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="pareto", storage=JournalStorage(JournalFileBackend(str(journal))))
    assert len(study.trials) == 2 and len(study.directions) == 2
    assert all(t.values[1] > 0 for t in study.best_trials)  # images/s objective
    assert (tmp_path / "study-pareto" / "pareto_front.png").exists()


def test_bad_study_files(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "space": {"t": {"type": "int", "low": 1, "high": 2}},
                                   "objective": "accuracy"}))
    result = runner.invoke(app, ["study", str(bad), "--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and "objective must be one of" in result.output


@pytest.mark.filterwarnings("ignore:The number of trials is too small")  # 1 trial: importances equal
def test_a_changed_spec_under_the_same_name_is_refused(tiny_synthetic, tmp_path):
    path = study_file(tmp_path / "s.yaml", tiny_synthetic, n_trials=1)
    results = tmp_path / "r"
    assert runner.invoke(app, ["study", str(path), "--results-dir", str(results)]).exit_code == 0
    changed = study_file(tmp_path / "s.yaml", tiny_synthetic, n_trials=1, objective="image_auroc")
    refused = runner.invoke(app, ["study", str(changed), "--results-dir", str(results)])
    assert refused.exit_code == 2 and "was made from another spec" in " ".join(refused.output.split())
    renamed = runner.invoke(app, ["study", str(changed), "--new-name", "tiny2", "--results-dir", str(results)])
    assert renamed.exit_code == 0, renamed.output
    assert (results / "study-tiny2").is_dir()
    forced = runner.invoke(app, ["study", str(changed), "--force", "--results-dir", str(results)])
    assert forced.exit_code == 0, forced.output
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{results / 'study-tiny' / 'study.db'}")
    assert len(study.trials) == 1 and list((results / "study-tiny").glob("trials-deleted-*.jsonl"))


def test_concurrent_workers_draw_from_different_seeds_a_single_worker_from_the_spec(tiny_synthetic, tmp_path):
    spec = load_study(study_file(tmp_path / "s.yaml", tiny_synthetic))
    first, second = (StudyRunner(spec, tmp_path / "r", tmp_path / "c") for _ in range(2))
    study = first.study()
    seeds = [first.worker_seed(study), second.worker_seed(study)]
    assert seeds[0] == spec.sampler_seed and seeds[1] != seeds[0]
    for worker in (first, second):  # both leave
        study.set_user_attr(f"{WORKER_ATTR}{worker.worker}", None)
    alone = StudyRunner(spec, tmp_path / "r", tmp_path / "c")
    assert alone.worker_seed(study) == spec.sampler_seed


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")  # the other workers ask by hand
def test_a_trial_started_past_n_trials_by_a_race_of_workers_is_not_run(tiny_synthetic, tmp_path):
    """Two workers each see one trial to go and both start one: the later numbered is not run (Optuna checks
    its budget only after a trial), so the study ends with n_trials, as the Ray test once did not."""
    spec = load_study(study_file(tmp_path / "s.yaml", tiny_synthetic, n_trials=2))
    worker = StudyRunner(spec, tmp_path / "r", tmp_path / "c")
    study = worker.study()
    others = [study.ask(), study.ask()]  # trials 0 and 1, running in other workers
    worker.run_trials(study)  # started before it saw them: its trial 2 would be a third
    surplus = study.trials[2]
    assert surplus.state == optuna.trial.TrialState.PRUNED and surplus.params == {}
    assert surplus.user_attrs["surplus"].startswith("not run: the 2 trials numbered before it make the study's "
                                                    "n_trials (2)")
    assert worker.finished(study) == 0 and list(worker.write_trials(study)["number"]) == [0, 1]
    study.tell(others[0], 0.5)
    study.tell(others[1], state=optuna.trial.TrialState.FAIL)  # a failed trial leaves room for one more
    assert [worker.counted_before(study.ask()) for _ in range(2)] == [1, 2]  # trials 3 and 4: 3 runs, 4 not
    assert worker.finished(study) == 1


@pytest.mark.parametrize(("space", "message"), [
    ({"scorer.t": [100, 200]}, "space.scorer.t is a list: write {type: categorical, choices: [100, 200]}"),
    ({"train.lr": {"type": "float", "low": 0.1}}, "space.train.lr: an float parameter needs numbers high"),
    ({"train.lrr": {"type": "float", "low": 0.001, "high": 0.01}}, "unknown key 'train.lrr' (did you mean 'lr'?)"),
    ({"scorer.t": {"type": "int", "low": 100, "high": 5000}},
     "scorer osd_irf_mean(t=5000): timestep t=5000 is outside [0, 999]"),
    ({"noise_net.name": {"type": "categorical", "choices": ["mlp_tiny", "mlp_tinyy"]}},
     "Unknown noise-nets 'mlp_tinyy'"),
])
def test_a_bad_search_space_fails_before_trial_one(space, message, tiny_synthetic, tmp_path):
    path = study_file(tmp_path / "s.yaml", tiny_synthetic, space=space)
    result = runner.invoke(app, ["study", str(path), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "r").exists()  # nothing made, no trial run


def test_a_storage_without_its_driver_or_unreachable_is_one_line(tiny_synthetic, tmp_path):
    path = study_file(tmp_path / "s.yaml", tiny_synthetic)
    result = runner.invoke(app, ["study", str(path), "--storage", "mysql://u@localhost/db",
                                 "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "its database driver is not installed (no module 'MySQLdb'): pip install " \
        "mysqlclient" in " ".join(result.output.split())
    result = runner.invoke(app, ["study", str(path), "--storage", f"sqlite:///{tmp_path}/no/such/dir/s.db",
                                 "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "cannot be opened: (sqlite3.OperationalError) unable to open database file" \
        in " ".join(result.output.split())
    assert not (tmp_path / "r").exists()


def test_set_overrides_the_base_of_a_study_file(tiny_synthetic, tmp_path):
    spec = load_study(study_file(tmp_path / "s.yaml", tiny_synthetic), sets=["train.epochs=1", "seed=3"])
    assert spec.base["train"]["epochs"] == 1 and spec.base["seed"] == 3


def test_quick_runs_a_few_trials_of_the_quick_setting(tmp_path):
    """--quick: the study file's quick overrides and ``quick_trials`` trials at most (3 unless it says), a smoke
    run, not the study."""
    from pathlib import Path

    preset = Path(__file__).resolve().parents[1] / "registry" / "studies" / "t_lr.yaml"
    full, quick = load_study(preset), load_study(preset, quick=True)
    assert (full.n_trials, quick.n_trials, quick.name) == (30, 3, "t-lr-quick")
    assert quick.base["noise_net"]["name"] == "mlp_tiny" and full.base["noise_net"]["name"] == "dit_gigant"
    path = study_file(tmp_path / "s.yaml", tmp_path, n_trials=10, quick_trials=2)
    assert load_study(path, quick=True).n_trials == 2 and load_study(path).n_trials == 10


def test_a_garbage_or_torn_journal_is_refused_in_one_line_and_a_good_one_opens(tmp_path):
    import optuna

    from adbench.engine.study import open_storage
    from adbench.errors import AdbenchError

    good = tmp_path / "good.log"
    optuna.create_study(study_name="s", storage=open_storage(str(good))).optimize(
        lambda t: t.suggest_float("a", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="s", storage=open_storage(str(good))).trials) == 2
    whole = good.read_bytes()
    lines = whole.count(b"\n")  # the cut falls in the last line
    for name, data, message in (
            ("garbage.log", b"this is not json\n", "line 1 is not an Optuna journal record"),
            ("foreign.log", b'{"a": 1}\n', "line 1 is not an Optuna journal record"),
            ("torn.log", whole[:-20], f"line {lines} (its last, cut short) is not an Optuna journal")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(AdbenchError, match=rf"--storage {tmp_path / name}: {re.escape(message)}"):
            open_storage(str(tmp_path / name))
        assert (tmp_path / name).read_bytes() == data  # left as it was
