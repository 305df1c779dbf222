import hashlib
import json
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from adbench.data.base import Transform, image_batches, load_batch, load_image, load_mask
from adbench.data.mvtec import MVTecLayout
from adbench.data.synthetic import CATEGORIES, DEFECTS, generate
from adbench.data.visa import VisA
from adbench.errors import DataError
from adbench.registry import DATASETS


def digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.png")):
        h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_synthetic_is_deterministic_and_complete(tiny_synthetic, tmp_path):
    again = tmp_path / "again"
    generate(again, seed=0, size=128, n_train=10, n_good=3, n_per_defect=1)
    assert digest(again) == digest(tiny_synthetic)
    other = tmp_path / "other"
    generate(other, seed=1, size=128, n_train=10, n_good=3, n_per_defect=1)
    assert digest(other) != digest(tiny_synthetic)
    ds = MVTecLayout(tiny_synthetic)
    assert ds.categories() == sorted(CATEGORIES)
    for cat in CATEGORIES:
        test = ds.test(cat)
        assert len(ds.train(cat)) == 10
        assert {s.defect for s in test} == {"good", *DEFECTS}
        for s in test:
            mask = load_mask(s, 128)
            assert mask.any() == bool(s.label)


def test_synthetic_masks_are_exactly_the_changed_pixels(tmp_path):
    # a defect replaces pixels with a flat colour: inside the mask all pixels share one colour
    generate(tmp_path / "d", seed=3, size=128, n_train=1, n_good=1, n_per_defect=2)
    for cat in CATEGORIES:
        for defect in DEFECTS:
            for i in range(2):
                img = np.asarray(Image.open(tmp_path / "d" / cat / "test" / defect / f"{i:03d}.png"))
                mask = np.asarray(Image.open(tmp_path / "d" / cat / "ground_truth" / defect / f"{i:03d}_mask.png")) > 0
                assert mask.sum() > 10
                assert len(np.unique(img[mask], axis=0)) == 1


def test_registry_creates_synthetic_in_cache():
    ds = DATASETS.create("synthetic", n_train=4, n_good=1, n_per_defect=1, size=64)
    assert ds.name == "synthetic" and len(ds.train("weave")) == 4


def test_load_image_resizes_and_normalises(tiny_synthetic):
    path = next((tiny_synthetic / "weave" / "train" / "good").iterdir())
    x = load_image(path, Transform(size=64))
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    raw = np.asarray(Image.open(path).convert("RGB").resize((64, 64), Image.BILINEAR)) / 255.0
    expected = (raw[..., 0] - 0.485) / 0.229
    assert np.allclose(x[0].numpy(), expected, atol=1e-5)


@pytest.fixture
def broken(tiny_synthetic, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic, root)
    return root


def test_missing_root_and_category(tmp_path, broken):
    with pytest.raises(DataError, match="does not exist"):
        MVTecLayout(tmp_path / "nowhere")
    with pytest.raises(DataError, match="Category 'bottle' not found.*Available: granite"):
        MVTecLayout(broken).train("bottle")


def test_path_traversal_is_refused(broken):
    with pytest.raises(DataError, match="not a path inside"):
        MVTecLayout(broken).train("../data")


def test_empty_train_set(broken):
    for p in (broken / "weave" / "train" / "good").iterdir():
        p.unlink()
    with pytest.raises(DataError, match=r"Empty training set.*weave/train/good"):
        MVTecLayout(broken).train("weave")


def test_defect_image_without_mask(broken):
    (broken / "washer" / "ground_truth" / "stain" / "000_mask.png").unlink()
    with pytest.raises(DataError, match=r"washer/test/stain/000.png has no mask"):
        MVTecLayout(broken).test("washer")


def test_mask_of_another_size(broken):
    mask_path = broken / "washer" / "ground_truth" / "hole" / "000_mask.png"
    Image.new("L", (100, 100)).save(mask_path)
    sample = next(s for s in MVTecLayout(broken).test("washer") if s.mask_path == mask_path)
    with pytest.raises(DataError, match=r"000_mask.png is 100x100 but its image .* is 128x128"):
        load_mask(sample, 64)


@pytest.mark.parametrize("mode", ["L", "P", "RGB"])
def test_masks_with_class_ids_load_as_binary(tmp_path, mode):
    """VisA masks hold defect-class ids {0, 1, 2}: every id > 0 is anomalous, in any PNG mode."""
    from adbench.data.base import Sample

    ids = np.zeros((8, 8), np.uint8)
    ids[1, 1], ids[2, 4:6], ids[6, 6] = 1, 2, 1
    img = Image.fromarray(ids, "L")
    if mode == "P":
        img = img.convert("P")
        img.putpalette([0, 0, 0, 0, 0, 0, 0, 0, 0] + [255] * 759)  # ids 1 and 2 drawn black: indices count
        img = Image.fromarray(ids, "P")
        img.putpalette([0, 0, 0] * 256)
    elif mode == "RGB":
        img = Image.fromarray(np.stack([np.zeros_like(ids), ids, np.zeros_like(ids)], axis=2), "RGB")
    img.save(tmp_path / "m.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "i.png")
    mask = load_mask(Sample(tmp_path / "i.png", tmp_path / "m.png", 1, "x"), 8)
    assert np.array_equal(mask, ids > 0)


def test_bilinear_mask_resize_thresholds_at_one_half(tmp_path):
    """ADer: the 0/255 mask resized bilinearly (PIL, with its antialias support), then > 0.5."""
    from adbench.data.base import Sample

    mask = np.zeros((8, 8), np.uint8)
    # 8 -> 4: PIL's triangle filter weighs input pixels 2i-1..2i+2 by 1/8, 3/8, 3/8, 1/8 on each axis
    mask[2:4, 2:6] = 255  # output (1, 1) and (1, 2): 3/4 x 7/8 = 0.66 > 0.5; (0, *) and (*, 0) at most 1/8
    mask[6, 0] = 255  # output (3, 0): 3/7 x 3/7 at the clamped corner = 0.18, below one half
    Image.fromarray(mask).save(tmp_path / "m.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "i.png")
    sample = Sample(tmp_path / "i.png", tmp_path / "m.png", 1, "x")
    expected = np.zeros((4, 4), bool)
    expected[1, 1:3] = True
    assert np.array_equal(load_mask(sample, 4, "bilinear"), expected)
    with pytest.raises(ValueError, match="mask resize"):
        load_mask(sample, 4, "bicubic")


def test_unreadable_and_truncated_image(broken):
    path = broken / "weave" / "train" / "good" / "000.png"
    path.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"Cannot read image .*000.png"):
        load_image(path, Transform(64))
    good = broken / "weave" / "train" / "good" / "001.png"
    good.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match=r"Cannot read image .*001.png"):
        load_image(good, Transform(64))


@pytest.mark.parametrize("workers", [0, 2])
def test_image_batches_in_order_and_bad_files_named(broken, workers):
    samples = DATASETS.create("mvtec", root=broken).train("weave")[:5]
    transform, cpu = Transform(64), torch.device("cpu")
    batches = list(image_batches(samples, transform, 2, cpu, workers=workers))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert torch.equal(torch.cat(batches), load_batch(samples, transform))
    samples[3].image_path.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"^Cannot read image .*003.png") as info:  # the message, no traceback
        list(image_batches(samples, transform, 2, cpu, workers=workers))
    assert "Traceback" not in str(info.value)


def test_visa_layout(tiny_synthetic, tmp_path):
    root = tmp_path / "visa"
    (root / "split_csv").mkdir(parents=True)
    rows = ["object,split,label,image,mask"]
    for split, folder in (("train", "train/good"), ("test", "test/good")):
        for p in sorted((tiny_synthetic / "weave" / folder).iterdir()):
            rel = f"candle/{split}/{p.name}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, root / rel)
            rows.append(f"candle,{split},normal,{rel},")
    img = tiny_synthetic / "weave" / "test" / "stain" / "000.png"
    mask = tiny_synthetic / "weave" / "ground_truth" / "stain" / "000_mask.png"
    for src, rel in ((img, "candle/Images/Anomaly/000.JPG"), (mask, "candle/Masks/Anomaly/000.png")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / rel)
    rows.append("candle,test,anomaly,candle/Images/Anomaly/000.JPG,candle/Masks/Anomaly/000.png")
    (root / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    ds = VisA(root)
    assert ds.categories() == ["candle"]
    assert len(ds.train("candle")) == 10
    test = ds.test("candle")
    assert [s.label for s in test].count(1) == 1
    assert load_mask(next(s for s in test if s.label), 128).any()
    with pytest.raises(DataError, match="split file"):
        VisA(tmp_path)
    (root / "split_csv" / "1cls.csv").write_bytes("\n".join(rows).encode("utf-16"))  # not UTF-8
    with pytest.raises(DataError, match=r"1cls.csv is not UTF-8 text \(byte 0 cannot be read\)"):
        VisA(root)


NO_ELPV = "elpv-dataset (the elpv extra: pip install -e '.[elpv]') is not installed"


def test_elpv_from_package():
    pytest.importorskip("elpv_dataset", reason=NO_ELPV)
    ds = DATASETS.create("elpv")
    assert ds.categories() == ["mono", "poly"] and ds.has_masks is False
    train, test = ds.train("mono"), ds.test("mono")
    assert all(s.label == 0 for s in train) and {s.label for s in test} == {0, 1}
    assert not {s.image_path for s in train} & {s.image_path for s in test}
    strict = DATASETS.create("elpv", threshold=1.0)
    assert sum(s.label for s in strict.test("mono")) < sum(s.label for s in test)
    assert load_image(train[0].image_path, Transform(64)).shape == (3, 64, 64)


def test_elpv_holds_out_a_quarter_of_the_normals_for_test():
    """Counts from the package's labels.csv: mono 588 normals, 313 + 56 defective (1 and 2/3); poly 920,
    402 + 50. About a quarter of the normals (by file-name hash) are test images, the rest train."""
    pytest.importorskip("elpv_dataset", reason=NO_ELPV)
    ds = DATASETS.create("elpv")
    for category, normals, anomalous, test_normals in (("mono", 588, 313 + 56, 156), ("poly", 920, 402 + 50, 252)):
        train, test = ds.train(category), ds.test(category)
        held = [s for s in test if s.label == 0]
        assert sum(s.label for s in test) == anomalous
        assert len(held) == test_normals and len(train) == normals - test_normals
        assert 0.2 < len(held) / normals < 0.3


def test_masks_are_resized_by_nearest_neighbour(tmp_path):
    """A one-pixel defect stays one block of pixels: no dilation by interpolation."""
    from adbench.data.base import Sample

    mask = np.zeros((8, 8), np.uint8)
    mask[3, 5] = 255
    mask[6, 1:3] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "i.png")
    sample = Sample(tmp_path / "i.png", tmp_path / "m.png", 1, "x")
    expected = np.zeros((16, 16), bool)
    expected[6:8, 10:12] = True
    expected[12:14, 2:6] = True
    assert np.array_equal(load_mask(sample, 16), expected)
    down = np.zeros((4, 4), bool)
    down[1, 2] = down[3, 0] = down[3, 1] = True  # 8 -> 4 keeps pixel (2i + 1, 2j + 1): rows 3 and 7 of 8
    mask_odd = np.zeros((8, 8), np.uint8)
    mask_odd[3, 5] = mask_odd[7, 1] = mask_odd[7, 3] = 255
    Image.fromarray(mask_odd).save(tmp_path / "m.png")
    assert np.array_equal(load_mask(sample, 4), down)


LOCO_DEFECTS = [  # pixel value -> saturation: absolute (pixels of the full image) or relative to the area
    {"defect_name": "missing_part", "pixel_value": 255, "saturation_threshold": 4, "relative_saturation": False},
    {"defect_name": "wrong_part", "pixel_value": 254, "saturation_threshold": 0.5, "relative_saturation": True},
    {"defect_name": "dent", "pixel_value": 253, "saturation_threshold": 1.0, "relative_saturation": True},
]


def loco_like(root, size=16, category="box", n_train=2):
    """An MVTec LOCO look-alike of noise images: one category, ``n_train`` train, 1 good test, one logical
    anomaly with two masks (two defects, pixel values 255 and 254) and one structural anomaly with one (253),
    and its defects_config.json; returns the logical image's two masks."""
    cat = root / category
    masks = []
    rng = np.random.default_rng(0)
    for folder, names in (("train/good", [f"{i:03d}" for i in range(n_train)]), ("validation/good", ["000"]),
                          ("test/good", ["000"]), ("test/logical_anomalies", ["000"]),
                          ("test/structural_anomalies", ["000"])):
        (cat / folder).mkdir(parents=True)
        for name in names:
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(cat / folder / f"{name}.png")
    boxes_of = {"logical_anomalies": [(1, 1, 4, 4, 255), (8, 9, 14, 12, 254)],
                "structural_anomalies": [(5, 5, 9, 9, 253)]}
    for kind, boxes in boxes_of.items():
        folder = cat / "ground_truth" / kind / "000"
        folder.mkdir(parents=True)
        for k, (x0, y0, x1, y1, value) in enumerate(boxes):  # in pixels of a 16 px image
            mask = np.zeros((size, size), np.uint8)
            mask[y0 * size // 16:y1 * size // 16, x0 * size // 16:x1 * size // 16] = value
            Image.fromarray(mask).save(folder / f"{k:03d}.png")
            if kind == "logical_anomalies":
                masks.append(mask > 0)
    (cat / "defects_config.json").write_text(json.dumps(LOCO_DEFECTS))
    return masks


def test_mvtec_loco_scores_the_union_of_each_images_masks_and_can_keep_one_kind(tmp_path):
    first, second = loco_like(tmp_path)
    data = DATASETS.create("mvtec_loco", root=str(tmp_path))
    test = data.test("box")
    assert [(s.label, s.defect) for s in test] == [(0, "good"), (1, "logical_anomalies"), (1, "structural_anomalies")]
    logical = test[1]
    np.testing.assert_array_equal(load_mask(logical, 16), first | second)  # both defects of the image
    assert load_mask(logical, 16).sum() == first.sum() + second.sum()  # disjoint boxes: nothing counted twice
    only = DATASETS.create("mvtec_loco", root=str(tmp_path), anomalies="structural").test("box")
    assert [s.defect for s in only] == ["good", "structural_anomalies"] and len(data.train("box")) == 2
    # both kinds are scored apart and averaged (MVTec's evaluation), unless pooled or one kind is kept
    assert data.kinds_apart == ("logical_anomalies", "structural_anomalies")
    pooled = DATASETS.create("mvtec_loco", root=str(tmp_path), anomalies="pooled")
    assert pooled.kinds_apart == () and pooled.test("box") == test
    assert DATASETS.create("mvtec_loco", root=str(tmp_path), anomalies="logical").kinds_apart == ()
    with pytest.raises(DataError, match="anomalies must be one of both, pooled, logical, structural"):
        DATASETS.create("mvtec_loco", root=str(tmp_path), anomalies="semantic")
    for f in (tmp_path / "box" / "ground_truth" / "structural_anomalies" / "000").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="holds no mask image"):
        load_mask(data.test("box")[2], 16)
    shutil.rmtree(tmp_path / "box" / "ground_truth" / "structural_anomalies")
    with pytest.raises(DataError, match="has no mask folder: expected .*structural_anomalies/000/000.png"):
        data.test("box")


def test_mvtec_loco_defect_regions_carry_their_saturation_from_defects_config(tmp_path):
    first, second = loco_like(tmp_path, size=32)
    data = DATASETS.create("mvtec_loco", root=str(tmp_path))
    test = data.test("box")
    regions = data.defect_regions("box", test, 16)  # scored at half the size: a quarter of the pixels
    assert [(r.image, int(r.mask.sum())) for r in regions] == [(1, 9), (1, 18), (2, 16)]
    np.testing.assert_array_equal(regions[0].mask, first[1::2, 1::2])  # nearest keeps pixel (2i + 1, 2j + 1)
    np.testing.assert_array_equal(regions[1].mask, second[1::2, 1::2])
    # 4 pixels of the 32 px image are 1 of the 16 px one; 0.5 of 18 pixels; the whole 4 x 4 box
    assert [r.saturation for r in regions] == [1.0, 9.0, 16.0]
    config = tmp_path / "box" / "defects_config.json"
    for share, pixels in ((0.3, 5.0), (0.05, 1.0)):  # 0.3 x 18 = 5.4: 5 pixels, as MVTec's int(); 0.9: at least 1
        config.write_text(json.dumps([LOCO_DEFECTS[0], {**LOCO_DEFECTS[1], "saturation_threshold": share},
                                      LOCO_DEFECTS[2]]))
        assert data.defect_regions("box", test, 16)[1].saturation == pixels
    for bad in (-0.5, 0.0, 1.5):
        config.write_text(json.dumps([LOCO_DEFECTS[0], {**LOCO_DEFECTS[1], "saturation_threshold": bad},
                                      LOCO_DEFECTS[2]]))
        with pytest.raises(DataError, match=rf"pixel value 254 has saturation_threshold {bad:g}; it must be in "
                                            r"\(0, 1\], a share of the defect"):
            data.defect_regions("box", test, 16)
    config.write_text(json.dumps(LOCO_DEFECTS[1:]))
    with pytest.raises(DataError, match=r"Mask .*logical_anomalies/000/000.png has pixel value 255, which no "
                                        r"defect of .*defects_config.json names \(its pixel values: \[253, 254\]\)"):
        data.defect_regions("box", test, 16)
    config.write_text('{"pixel_value": 255}')
    with pytest.raises(DataError, match="is not a list of defects with pixel_value, saturation_threshold"):
        data.defect_regions("box", test, 16)
    config.unlink()
    with pytest.raises(DataError, match=r"defects_config.json is missing: AU-sPRO reads"):
        data.defect_regions("box", test, 16)


def test_a_mask_of_a_mask_folder_with_the_wrong_size_is_refused_naming_it(tmp_path):
    from adbench.data.base import check_mask_size

    loco_like(tmp_path)
    Image.new("L", (8, 8), 255).save(tmp_path / "box" / "ground_truth" / "logical_anomalies" / "000" / "002.png")
    sample = DATASETS.create("mvtec_loco", root=str(tmp_path)).test("box")[1]
    with pytest.raises(DataError, match=r"Mask .*000/002.png is 8x8 but its image .* is 16x16"):
        check_mask_size(sample)


def ad2_like(root, size=16, n_train=2, n_validation=1):
    """An MVTec AD 2 look-alike of noise images (``size`` wide, 3/4 as high): category ``can`` with train/good,
    validation/good, test_public (2 good, 1 bad with its mask) and the unlabelled test_private (3) and
    test_private_mixed (2)."""
    cat = root / "can"
    rng = np.random.default_rng(1)
    for folder, n in (("train/good", n_train), ("validation/good", n_validation), ("test_public/good", 2),
                      ("test_public/bad", 1), ("test_private", 3), ("test_private_mixed", 2)):
        (cat / folder).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size * 3 // 4, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(cat / folder / f"{i:03d}_regular.png")
    (cat / "test_public" / "ground_truth" / "bad").mkdir(parents=True)
    mask = np.zeros((size * 3 // 4, size), np.uint8)
    mask[size // 4:size // 2, size // 4:size // 2] = 255
    Image.fromarray(mask).save(cat / "test_public" / "ground_truth" / "bad" / "000_regular_mask.png")
    return cat


def test_mvtec_ad2_reads_train_validation_the_public_test_set_and_the_private_ones(tmp_path):
    cat = ad2_like(tmp_path)
    data = DATASETS.create("mvtec_ad2", root=str(tmp_path))
    assert data.categories() == ["can"] and len(data.train("can")) == 2
    test = data.test("can")
    assert [s.label for s in test] == [0, 0, 1] and test[2].mask_path.name == "000_regular_mask.png"
    assert load_mask(test[2], 8)[3:5, 2:4].all() and load_mask(test[2], 8).sum() == 4  # rows of 12 px: 5, 6 of 12
    assert [s.image_path.relative_to(cat).as_posix() for s in data.validation_normals("can")] == [
        "validation/good/000_regular.png"]
    private = data.private_tests("can")  # no labels: never scored, only exported
    assert {split: [s.image_path.name for s in samples] for split, samples in private.items()} == {
        "test_private": ["000_regular.png", "001_regular.png", "002_regular.png"],
        "test_private_mixed": ["000_regular.png", "001_regular.png"]}
    shutil.rmtree(cat / "test_private_mixed")
    with pytest.raises(DataError, match="test_private_mixed is missing: MVTec AD 2's private test sets"):
        data.private_tests("can")
    shutil.rmtree(cat / "validation")
    with pytest.raises(DataError, match=r"data.held_out: validation reads .*can/validation/good, which is missing"):
        data.validation_normals("can")
    (cat / "test_public" / "ground_truth" / "bad" / "000_regular_mask.png").unlink()
    with pytest.raises(DataError, match="has no mask: expected .*000_regular_mask.png"):
        data.test("can")


def realiad_like(root, jsons="realiad_jsons", resolution=256):
    """A Real-IAD look-alike: object ``toy`` with two normal training samples and, in the test split, one
    normal sample and one anomalous sample whose views C2 and C4 show the defect (masks beside them), its
    split file in Tencent's format (``meta`` with ``prefix`` and ``normal_class``) in ``root/<jsons>``."""
    folder = root / f"realiad_{resolution}" / "toy"
    split = {"meta": {"prefix": "toy", "normal_class": "OK"}, "train": [], "test": []}
    for which, kind, sample in (("train", "OK", "S0001"), ("train", "OK", "S0002"), ("test", "OK", "S0003"),
                                ("test", "NG/pit", "S0004")):
        (folder / kind / sample).mkdir(parents=True)
        for view in range(1, 6):
            name = f"{kind}/{sample}/toy_{sample[1:]}_{kind[:2]}_C{view}_20230101.jpg"
            defect = kind != "OK" and view in (2, 4)
            Image.new("RGB", (16, 16), (10 * view, 200 * defect, 0)).save(folder / name)
            entry = {"category": "toy", "anomaly_class": "OK", "image_path": name, "mask_path": None}
            if defect:
                mask = name.replace(".jpg", "_mask.png")
                Image.new("L", (16, 16), 255).save(folder / mask)
                entry = {"category": "toy", "anomaly_class": "pit", "image_path": name, "mask_path": mask}
            split[which].append(entry)
    (root / jsons).mkdir(parents=True)
    (root / jsons / "toy.json").write_text(json.dumps(split))
    return split


def test_real_iad_reads_its_json_splits_and_scores_an_object_by_its_most_anomalous_view(tmp_path):
    from adbench.engine.context import EvalSet

    realiad_like(tmp_path)
    data = DATASETS.create("real_iad", root=str(tmp_path))
    assert data.categories() == ["toy"] and len(data.train("toy")) == 10
    test = data.test("toy")
    assert [s.label for s in test] == [0] * 5 + [0, 1, 0, 1, 0] and {s.group for s in test} == {"OK/S0003",
                                                                                                "NG/pit/S0004"}
    scores = np.array([0.1, 0.9, 0.2, 0.3, 0.4, 0.5, 0.6, 0.05, 0.7, 0.2])
    evalset = EvalSet("toy", torch.empty(0), torch.empty(0), np.array([s.label for s in test]), None, test)
    objects, labels = evalset.image_level(scores)
    assert objects.tolist() == [0.9, 0.7] and labels.tolist() == [0, 1]  # max over each object's five views
    one_view = DATASETS.create("real_iad", root=str(tmp_path), views="C2").test("toy")
    assert [s.image_path.name.split("_")[3] for s in one_view] == ["C2", "C2"] and not any(s.group for s in one_view)
    assert EvalSet("toy", torch.empty(0), torch.empty(0), np.array([0, 1]), None, one_view).image_level(
        np.array([0.3, 0.1]))[0].tolist() == [0.3, 0.1]  # one view: each image scored alone
    for args, message in (({"resolution": 300}, "resolution must be one of 256, 512, 1024, raw"),
                          ({"views": "C9"}, "views must be one of all, C1"),
                          ({"resolution": 512}, "realiad_512 is missing"),
                          ({"jsons": "realiad_jsons_sv"}, "no split files <object>.json in")):
        with pytest.raises(DataError, match=re.escape(message)):
            DATASETS.create("real_iad", root=str(tmp_path), **args)


def test_real_iad_split_sets_are_found_where_the_official_readme_or_the_unpacked_zip_puts_them(tmp_path):
    """ROOT/realiad_jsons/<object>.json (Tencent's README), ROOT/realiad_jsons/realiad_jsons_sv/... (the zip
    unpacked, as ADer and anomalib read it); the single-view set scores each image alone; realiad_raw."""
    realiad_like(tmp_path / "a")
    assert DATASETS.create("real_iad", root=str(tmp_path / "a")).jsons == tmp_path / "a" / "realiad_jsons"
    realiad_like(tmp_path / "b", jsons="realiad_jsons/realiad_jsons_sv", resolution="raw")
    single = DATASETS.create("real_iad", root=str(tmp_path / "b"), jsons="realiad_jsons_sv", resolution="raw")
    assert single.jsons == tmp_path / "b" / "realiad_jsons" / "realiad_jsons_sv"
    test = single.test("toy")
    assert len(test) == 10 and not any(s.group for s in test)  # single view: no object grouping
    assert test[0].image_path.is_relative_to(tmp_path / "b" / "realiad_raw" / "toy")
    realiad_like(tmp_path / "c", jsons="realiad_jsons/realiad_jsons")  # adbench's earlier default path
    assert DATASETS.create("real_iad", root=str(tmp_path / "c"), jsons="realiad_jsons/realiad_jsons").categories() \
        == ["toy"]


def test_real_iad_labels_as_tencents_loader_and_trains_on_every_fuiad_training_entry(tmp_path):
    """Normal: mask_path null or anomaly_class == meta.normal_class; files under meta.prefix; every training
    entry is trained on (FUIAD: its anomalous entries too, unlabelled)."""
    split = realiad_like(tmp_path, jsons="realiad_jsons_fuiad_0.1")
    pit = [e for e in split["test"] if e["mask_path"]]
    split["train"].append(dict(pit[0]))  # an anomalous sample in the training set (FUIAD)
    split["test"][5]["anomaly_class"] = "pit"  # a view of the anomalous sample without a mask: normal
    split["meta"] = {"prefix": "toy_v2", "normal_class": "GOOD"}
    split["test"][0]["anomaly_class"] = "GOOD"
    split["test"][1]["anomaly_class"] = "OK"  # not the normal class, but no mask: normal
    split["test"][2] |= {"anomaly_class": "GOOD", "mask_path": pit[0]["mask_path"]}  # the normal class: normal
    (tmp_path / "realiad_256" / "toy").rename(tmp_path / "realiad_256" / "toy_v2")
    (tmp_path / "realiad_256" / "toy").mkdir()  # the object's folder exists; its files sit under the prefix
    (tmp_path / "realiad_jsons_fuiad_0.1" / "toy.json").write_text(json.dumps(split))
    data = DATASETS.create("real_iad", root=str(tmp_path), jsons="realiad_jsons_fuiad_0.1")
    train, test = data.train("toy"), data.test("toy")
    assert len(train) == 11 and {s.label for s in train} == {0} and all(s.mask_path is None for s in train)
    assert train[-1].image_path == tmp_path / "realiad_256" / "toy_v2" / pit[0]["image_path"]
    assert [s.label for s in test] == [0] * 5 + [0, 1, 0, 1, 0]
    assert [s.defect for s in test if s.label] == ["pit", "pit"]
    split["test"][3].pop("mask_path")
    (tmp_path / "realiad_jsons_fuiad_0.1" / "toy.json").write_text(json.dumps(split))
    with pytest.raises(DataError, match=r"toy.json: a test entry lacks 'mask_path' \(each has category"):
        data.test("toy")
