"""The knn reference scorer against brute force: distances, the greedy coreset, and its place in runs."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.distance import cdist

from adbench.config import RunConfig
from adbench.engine.grid import GridSpec, expand
from adbench.errors import ConfigError
from adbench.registry import SCORERS
from adbench.scorers.knn import greedy_coreset, nearest_distance


def test_nearest_distance_is_the_brute_force_minimum():
    rng = np.random.default_rng(0)
    queries, bank = rng.normal(size=(50, 6)), rng.normal(size=(37, 6))
    got = nearest_distance(torch.from_numpy(queries).float(), torch.from_numpy(bank).float(), chunk=7)
    np.testing.assert_allclose(got.numpy(), cdist(queries, bank).min(axis=1), rtol=1e-5, atol=1e-5)
    assert nearest_distance(torch.from_numpy(bank).float(), torch.from_numpy(bank).float()).max() == 0  # itself


def k_center_by_hand(points: np.ndarray, n: int, first: int) -> list[int]:
    """Greedy k-center with the full distance matrix: each pick is the point farthest from the picked."""
    d = cdist(points, points)
    picked = [first]
    for _ in range(n - 1):
        picked.append(int(np.argmax(d[:, picked].min(axis=1))))
    return picked


def test_greedy_coreset_is_k_center_selection():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(60, 5))  # 5 <= 128 dimensions: no projection
    first = int(torch.randint(60, (1,), generator=torch.Generator().manual_seed(3)))
    got = greedy_coreset(torch.from_numpy(points).float(), 9, torch.Generator().manual_seed(3))
    assert got.tolist() == k_center_by_hand(points, 9, first)


def test_greedy_coreset_selects_on_a_seeded_random_projection_of_wide_features():
    """Features wider than 128 channels: k-center on bank @ P / sqrt(128), P ~ N(0, 1) drawn from the
    generator before the first row; the scale cannot change which row is farthest."""
    rng = np.random.default_rng(4)
    points = rng.normal(size=(50, 200))
    gen = torch.Generator().manual_seed(7)
    projection = torch.randn(200, 128, generator=gen).double().numpy()
    first = int(torch.randint(50, (1,), generator=gen))
    got = greedy_coreset(torch.from_numpy(points).float(), 6, torch.Generator().manual_seed(7))
    assert got.tolist() == k_center_by_hand(points @ projection, 6, first)


@pytest.mark.parametrize("active_rows", [1, 7, 64])
def test_greedy_coreset_searching_few_active_rows_picks_as_a_scan_of_all(active_rows):
    """The lazy search (a pick looks at ``active_rows`` rows; the others' bounds are refreshed only when one
    could be farther) picks the rows the full distance matrix does, on clustered points where the
    farthest row changes cluster often, with as few as one active row."""
    rng = np.random.default_rng(5)
    centres = rng.normal(scale=4.0, size=(12, 6))
    points = centres[rng.integers(12, size=500)] + rng.normal(size=(500, 6))
    first = int(torch.randint(500, (1,), generator=torch.Generator().manual_seed(2)))
    got = greedy_coreset(torch.from_numpy(points).float(), 90, torch.Generator().manual_seed(2), active_rows)
    assert got.tolist() == k_center_by_hand(points, 90, first)


def test_greedy_coreset_on_repeated_rows_is_still_farthest_first():
    """Every row twice (equal distances everywhere): any of two equal rows may come first, but each pick
    is at the largest distance from those before it, and no row's twin is picked while others are far."""
    rng = np.random.default_rng(6)
    points = np.repeat(rng.normal(size=(150, 4)), 2, axis=0)
    got = greedy_coreset(torch.from_numpy(points).float(), 40, torch.Generator().manual_seed(0), active_rows=3)
    d = cdist(points, points)
    for k in range(1, 40):
        farthest = d[:, got[:k].numpy()].min(axis=1)
        assert farthest[got[k]] == pytest.approx(farthest.max(), rel=1e-5)
    assert len({tuple(points[i]) for i in got.tolist()}) == 40


def test_knn_scorer_maps_are_nearest_bank_distances():
    rng = np.random.default_rng(2)
    train, test = rng.normal(size=(3, 4, 2, 2)), rng.normal(size=(2, 4, 2, 2))
    scorer = SCORERS.create("knn", coreset=1.0)
    with pytest.raises(RuntimeError, match="fit the memory bank"):
        scorer.score(None, None, torch.zeros(1, 4, 2, 2))
    scorer.fit(torch.from_numpy(train).float())
    out = scorer.score(None, None, torch.from_numpy(test).float())
    bank = train.transpose(0, 2, 3, 1).reshape(-1, 4)  # every position of every training image
    for n in range(2):
        for i in range(2):
            for j in range(2):
                expected = np.linalg.norm(bank - test[n, :, i, j], axis=1).min()
                assert out.feature_map[n, i, j].item() == pytest.approx(expected, rel=1e-5)
    assert out.components == {} and scorer.nfe == 0 and scorer.image_scores == ("max",)
    sub = SCORERS.create("knn")  # default: 10% coreset
    sub.fit(torch.from_numpy(np.repeat(train, 10, axis=0)).float())
    assert len(sub.bank) == 12  # round(0.1 * 120)
    with pytest.raises(ConfigError, match="coreset"):
        SCORERS.create("knn", coreset=0)


def test_knn_cells_are_shared_across_noise_nets():
    spec = GridSpec("g", base={"categories": ["a", "b"], "data": {"setting": "single"}},
                    axes={"noise_net.name": ["mlp_tiny", "dit_tiny"], "noise_net.args": [{}, {"depth": 3}],
                          "train.epochs": [1, 2], "scoring.use_ema": [False, True],
                          "noise_net.precision": ["bf16", "fp32"], "scorer": ["knn", "osd_irf_mean"]})
    cells = expand(spec)
    knn = [c for c in cells if c.spec["name"] == "knn"]
    assert len(cells) == 2 * 32 + 2 and len(knn) == 2  # one knn cell per category, whatever the noise net
    default = RunConfig()
    assert all((c.cfg.noise_net, c.cfg.train, c.cfg.scoring.use_ema) == (default.noise_net, default.train, False)
               and c.cfg.noise_net.model_dump() == {"name": "mlp", "args": {}, "precision": "bf16",
                                                    "feature_norm": "none"}
               for c in knn)


def test_knn_run_trains_no_noise_net(tiny_synthetic, tmp_path):
    from typer.testing import CliRunner

    from adbench.cli import app

    result = CliRunner().invoke(app, [
        "run", "--dataset", "mvtec", "--data-root", str(tiny_synthetic), "-c", "washer", "--backbone",
        "efficientnet_lite0", "-s", "knn:coreset=0.5", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    row = pd.read_parquet(run_dir / "metrics.parquet").iloc[0]
    assert not (run_dir / "models").exists() and (row["noise_net"], row["nfe"]) == ("none", 0)
