"""BMAD: both layouts found per category on generated look-alike trees, masks paired by file name, clear
errors, and a tiny run with pixel metrics for the pixel-level category and n/a for the image-level one."""

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from adbench.cli import app
from adbench.data.base import Transform, load_image
from adbench.data.bmad import BMAD
from adbench.errors import DataError
from adbench.metrics import metric_keys
from adbench.results import upgraded
from tests.test_end_to_end import only_run_dir, write_config

COUNTS = {"train/good": 12, "valid/good": 3, "valid/Ungood": 0, "test/good": 4, "test/Ungood": 4}


def gray(path, seed, blob=None):
    """A 64 x 64 grayscale PNG (mode L), brighter in ``blob`` (a square) when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.random.default_rng(seed).integers(60, 120, (64, 64), dtype=np.uint8)
    if blob is not None:
        values[blob] = 250
    Image.fromarray(values, "L").save(path)


def bmad_tree(root, pixel=("Brain",), image_level=("RSNA",), counts=None, valid="valid", train_img=True):
    """Look-alike BMAD folders: pixel-level ones (good/img, Ungood/img, Ungood/label) and image-level ones
    (images directly in good and Ungood); valid/Ungood is empty unless ``counts`` says otherwise. ``valid``:
    the validation folder's name (BMAD's loaders: ``val``); ``train_img``: pixel-level training images in
    train/good/img (BMAD's README), else directly in train/good (BMAD's loaders, anomalib)."""
    seed = 0
    for category in (*pixel, *image_level):
        for split, n in (counts or COUNTS).items():
            split = split.replace("valid/", f"{valid}/")
            sub = "img" if category in pixel and (train_img or not split.startswith("train")) else ""
            for i in range(n):
                seed += 1
                anomalous = split.endswith("Ungood")
                blob = np.s_[8 + 4 * i:24 + 4 * i, 20:36] if anomalous else None
                gray(root / category / split / sub / f"{i:03d}.png", seed, blob)
                if anomalous and category in pixel:
                    mask = np.zeros((64, 64), dtype=np.uint8)
                    mask[blob] = 255
                    (root / category / split / "label").mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask).save(root / category / split / "label" / f"{i:03d}.png")
            (root / category / split / sub).mkdir(parents=True, exist_ok=True)
    return root


def test_both_layouts_are_found_per_category_with_masks_paired_by_name(tmp_path):
    ds = BMAD(bmad_tree(tmp_path / "bmad"))
    assert ds.categories() == ["Brain", "RSNA"]
    assert ds.pixel_level("Brain") and not ds.pixel_level("RSNA")
    for category in ("Brain", "RSNA"):
        train, valid, test = ds.train(category), ds.valid(category), ds.test(category)
        assert len(train) == 12 and {s.label for s in train} == {0}
        assert [s.label for s in valid] == [0, 0, 0]  # an empty valid/Ungood is allowed
        assert sorted(s.label for s in test) == [0] * 4 + [1] * 4
    brain = [s for s in ds.test("Brain") if s.label]
    assert all(s.mask_path == s.image_path.parent.parent / "label" / s.image_path.name for s in brain)
    assert all(s.mask_path is None for s in ds.test("RSNA"))
    pixels = load_image(brain[0].image_path, Transform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    assert pixels.shape == (3, 32, 32) and np.array_equal(pixels[0].numpy(), pixels[2].numpy())  # gray -> 3 ch


@pytest.mark.parametrize(("folders", "valid", "train_img"), [
    # BMAD's README and release
    ({"Brain": "Brain", "RESC": "RESC", "OCT2017": "OCT2017", "Camelyon16": "camelyon16"}, "valid", True),
    # BMAD's own loaders (MKD/data.py): training images directly in train/good, val, Chest-RSNA, camelyon16_256
    ({"Liver": "Liver", "RSNA": "Chest-RSNA", "Camelyon16": "camelyon16_256", "OCT2017": "OCT2017"}, "val", False),
    # anomalib's bmad datamodule
    ({"Brain": "Brain", "RSNA": "Chest", "Camelyon16": "Histopathology", "OCT2017": "Retina_OCT2017",
      "RESC": "Retina_RESC"}, "valid", False),
    ({"RSNA": "RSNA", "Camelyon16": "Camelyon16"}, "valid", True),  # adbench's earlier spellings
])
def test_every_published_spelling_and_layout_loads_as_invads_categories(tmp_path, folders, valid, train_img):
    pixel = [f for c, f in folders.items() if c in ("Brain", "Liver", "RESC")]
    image_level = [f for c, f in folders.items() if c not in ("Brain", "Liver", "RESC")]
    ds = BMAD(bmad_tree(tmp_path, pixel=pixel, image_level=image_level, valid=valid, train_img=train_img))
    assert ds.categories() == sorted(folders)
    for category, folder in folders.items():
        assert ds.folder(category) == tmp_path / folder
        train, test = ds.train(category), ds.test(category)
        assert [s.image_path.name for s in train] == [f"{i:03d}.png" for i in range(12)] and {s.label for s in train} \
            == {0}
        assert [s.label for s in ds.valid(category)] == [0, 0, 0]
        assert [s.label for s in test] == [0] * 4 + [1] * 4
        masks = [s.mask_path for s in test if s.label]
        if category in ("Brain", "Liver", "RESC"):
            assert ds.pixel_level(category)
            assert masks == [tmp_path / folder / "test" / "Ungood" / "label" / f"{i:03d}.png" for i in range(4)]
        else:
            assert not ds.pixel_level(category) and masks == [None] * 4


def test_a_split_folder_under_no_known_name_is_refused_naming_them(tmp_path):
    root = bmad_tree(tmp_path, pixel=(), image_level=("OCT2017",), valid="validation")
    with pytest.raises(DataError, match=r"BMAD OCT2017: no valid or val folder in .*OCT2017\."):
        BMAD(root).valid("OCT2017")


def test_broken_bmad_trees_are_one_line_naming_the_file(tmp_path):
    root = bmad_tree(tmp_path / "bmad")
    orphan = root / "Brain" / "test" / "Ungood" / "label" / "099.png"
    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(orphan)
    with pytest.raises(DataError, match=r"BMAD mask .*label/099.png has no image of that name in .*Ungood/img"):
        BMAD(root).test("Brain")
    orphan.unlink()
    (root / "Brain" / "test" / "Ungood" / "label" / "002.png").unlink()
    with pytest.raises(DataError, match=r"BMAD image .*img/002.png has no mask .*label/002.png"):
        BMAD(root).test("Brain")
    for png in (root / "RSNA" / "test" / "Ungood").iterdir():
        png.unlink()
    (root / "RSNA" / "test" / "Ungood").rmdir()
    with pytest.raises(DataError, match=r"BMAD folder .*RSNA/test/Ungood is missing \(images directly in good "
                                         r"and Ungood, or in their img/ sub-folders"):
        BMAD(root).test("RSNA")
    with pytest.raises(DataError, match=r"holds none of BMAD's dataset folders"):
        BMAD(tmp_path)
    with pytest.raises(DataError, match=r"BMAD category 'Liver' not found .* Available: \['Brain', 'RSNA'\]"):
        BMAD(root).train("Liver")


def test_a_tiny_bmad_run_has_pixel_metrics_where_masks_exist_and_na_elsewhere(tmp_path):
    root = bmad_tree(tmp_path / "bmad")
    config = write_config(tmp_path / "c.yaml", {"data.dataset": "bmad", "data.root": str(root),
                                                "data.setting": "single", "train.epochs": 2,
                                                "backbone.image_size": 64})
    result = CliRunner().invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r"), "-s", "osd_irf_mean",
                                      "-s", "invad:steps=2"])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(only_run_dir(tmp_path / "r") / "metrics.parquet")
    rows = frame[frame["scorer"] == "osd_irf_mean"].set_index("category")
    assert all(not math.isnan(rows.loc["Brain", k]) for k in ("pixel_auroc", "pixel_ap", "pixel_aupro"))
    assert all(math.isnan(rows.loc["RSNA", k]) for k in ("pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro"))
    assert not math.isnan(rows.loc["RSNA", "image_auroc"])
    # mAD: the seven metrics where masks exist, the three image metrics where they do not
    assert rows.loc["Brain", "mad"] == pytest.approx(np.mean([rows.loc["Brain", k] for k in metric_keys()]))
    image = [k for k in metric_keys() if k.startswith("image_")]
    assert len(image) == 3 and rows.loc["RSNA", "mad"] == pytest.approx(np.mean([rows.loc["RSNA", k] for k in image]))
    table = (only_run_dir(tmp_path / "r") / "table.md").read_text()
    assert "mAD of BMAD rows: the mean of the metrics that exist" in table
    assert "bmad" in CliRunner().invoke(app, ["list", "datasets"]).output


def test_a_bmad_study_validates_on_bmads_own_valid_split_and_says_so(tmp_path):
    import json

    import yaml

    from tests.test_study import study_file

    root = bmad_tree(tmp_path / "bmad", counts={**COUNTS, "valid/Ungood": 2})
    spec = yaml.safe_load(study_file(tmp_path / "s.yaml", root, n_trials=1).read_text())
    spec["base"]["data"] = {"dataset": "bmad", "root": str(root), "setting": "single", "holdout_fraction": 0.2}
    spec["base"]["categories"] = ["Brain", "RSNA"]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(app, ["study", str(tmp_path / "s.yaml"), "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # unwrapped
    assert "validation images: bmad's own labelled validation split (valid/), not the test set" in said
    records = [json.loads(line) for line in (tmp_path / "study-tiny" / "trials.jsonl").read_text().splitlines()]
    assert sorted((r["category"], r["n_test"], r["n_anomalous"]) for r in records) == [("Brain", 5, 2),
                                                                                       ("RSNA", 5, 2)]


def test_the_bmad_layout_has_det_for_every_dataset_and_loc_where_masks_exist(tmp_path):
    import json

    from adbench.config import RunConfig
    from adbench.reporting.tables import bmad_tables

    rows = []
    for scorer, shift in (("osd_irf_mean", 0.0), ("invad", 0.05)):
        config = json.dumps(RunConfig(data={"dataset": "bmad", "root": "bmad"},
                                      scoring={"scorers": [{"name": scorer}]}).to_dict())
        for category, pixel in (("Brain", 0.9), ("RSNA", float("nan")), ("Liver", 0.7)):
            rows.append({"dataset": "bmad", "category": category, "scorer": scorer, "scorer_label": scorer,
                         "image_auroc": 0.8 + shift, "pixel_auroc": pixel - shift, "fps": 10.0 + 100 * shift,
                         "seed": 0, "device": "cpu", "fps_batch_size": 8, "fps_passes": 5, "protocol": "invad",
                         "image_score": "nll+diff", "smoothing_sigma": 0.0, "pool_size": 1, "transductive": False,
                         "setting": "single", "noise_net": "mlp", "backbone": "efficientnet_b4", "config": config})
    md, tex = bmad_tables(upgraded(pd.DataFrame(rows)), "tab:bmad")
    header, _, first, second = md.splitlines()[2:6]
    assert header == "| method | Brain det. | Brain loc. | Liver det. | Liver loc. | RSNA det. | mean | FPS |"
    # means: osd (80 + 90 + 80 + 70 + 80) / 5 = 80.0; invad (85 + 85 + 85 + 65 + 85) / 5 = 81.0
    assert first == "| osd_irf_mean | _80.0_ | **90.0** | _80.0_ | **70.0** | _80.0_ | _80.0_ | _10.0_ |"
    assert second == "| invad | **85.0** | _85.0_ | **85.0** | _65.0_ | **85.0** | **81.0** | **15.0** |"
    assert "\\multicolumn{2}{c}{Brain}" in tex and "\\multicolumn{2}{c}{Liver}" in tex and "det. & loc." in tex


def test_the_bmad_preset_runs_on_a_bmad_tree_and_reports_the_bmad_layout(tmp_path):
    from pathlib import Path

    root = bmad_tree(tmp_path / "bmad")
    preset = Path(__file__).resolve().parents[1] / "registry" / "invad_bmad.yaml"
    result = CliRunner().invoke(app, [
        "grid", str(preset), "--results-dir", str(tmp_path / "r"), "--set", f"data.root={root}",
        "--set", "backbone.name=efficientnet_lite0", "--set", "backbone.image_size=64",
        "--set", "noise_net.name=mlp_tiny", "--set", "train={epochs: 2, batch_size: 4, warmup_epochs: 1}"])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(tmp_path / "r" / "grid-invad-bmad" / "metrics.parquet")
    assert len(frame) == 6 and set(frame["setting"]) == {"single"}  # 3 methods x (Brain, RSNA)
    report = CliRunner().invoke(app, ["report", str(tmp_path / "r" / "grid-invad-bmad"), "--layout", "bmad",
                                      "--out", str(tmp_path / "t"), "--format", "md"])
    assert report.exit_code == 0, report.output
    table = (tmp_path / "t.md").read_text().splitlines()
    assert table[2] == "| method | Brain det. | Brain loc. | RSNA det. | mean | FPS |"
    methods = sorted(line.split(" | ")[0].lstrip("| ") for line in table[4:7])
    # every row transductive (the official normalisation): said once in the notes, not by a mark on each row
    assert methods == ["invad(steps=3) / mlp_tiny", "knn‡ / none", "osd_irf_mean / mlp_tiny"], table
    assert any(line.startswith("- All rows transductive") for line in table)
