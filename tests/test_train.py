"""The offline model side: targets, augmentation geometry, export round trip, INT8, training."""

import json
import re
import subprocess
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import pytest
import torch

from edge.detect.model import Detector
from models import data
from models.export import CALIBRATION_CHUNK, Tiles, chunk_size, export_fp32, metadata, quantise
from models.loss import assign, cell_grid, detection_loss
from models.net import STRIDES, ParcelNet


def test_every_box_gets_a_cell_even_thin_and_tiny():
    centres, strides = cell_grid((320, 320), STRIDES)
    boxes = torch.tensor([[[10, 10, 14, 13], [100, 20, 102, 90], [110, 100, 310, 290],
                           [40, 200, 90, 240], [0, 0, 0, 0]]], dtype=torch.float32)
    valid = torch.tensor([[True, True, True, True, False]])
    owner = assign(boxes, valid, centres, strides)
    owned = set(owner[owner >= 0].tolist())
    assert owned == {0, 1, 2, 3}
    # The large box is answered on the coarse level, the tiny one on the fine level.
    assert set(strides[owner[0] == 2].tolist()) == {32.0}
    assert set(strides[owner[0] == 0].tolist()) == {8.0}


def test_loss_falls_when_the_head_predicts_the_truth():
    centres, strides = cell_grid((64, 64), STRIDES)
    boxes = torch.tensor([[[8.0, 8.0, 40.0, 30.0]]])
    classes, valid = torch.tensor([[3]]), torch.tensor([[True]])
    owner = assign(boxes, valid, centres, strides)[0]
    good = torch.zeros(1, len(centres), 4 + 8)
    good[..., 4:] = -8
    for i in torch.nonzero(owner >= 0).flatten():
        c, s = centres[i], strides[i]
        good[0, i, :4] = torch.cat([c - boxes[0, 0, :2], boxes[0, 0, 2:] - c]) / s
        good[0, i, 4 + 3] = 8
    bad = good.clone()
    bad[..., 4:] = 0
    bad[..., :4] = 1
    assert detection_loss(good, boxes, classes, valid, centres, strides)[0] < \
        0.1 * detection_loss(bad, boxes, classes, valid, centres, strides)[0]


@pytest.mark.parametrize("seed", range(6))
def test_augmented_boxes_stay_on_their_objects(seed):
    rng = np.random.default_rng(seed)
    img = np.full((300, 700, 3), 255, np.uint8)
    boxes = np.array([[50, 40, 130, 90], [300, 150, 380, 260], [600, 20, 690, 80]], np.float32)
    for x1, y1, x2, y2 in boxes.astype(int):
        img[y1:y2, x1:x2] = 0
    out, b, _ = data.crop(img, boxes, np.arange(3), rng)
    out, b = data.flip_rotate(out, b, rng)
    assert out.shape == (data.INPUT, data.INPUT, 3)
    for x1, y1, x2, y2 in b:
        inner = out[int(np.ceil(y1)) + 1:int(y2) - 1, int(np.ceil(x1)) + 1:int(x2) - 1]
        if inner.size:
            assert inner.mean() < 40
    # Every dark pixel belongs to some kept or cut-off box: nothing dark is unlabelled in view.
    dark = out.mean(2) < 128
    if len(b) == 3:
        covered = np.zeros_like(dark)
        for x1, y1, x2, y2 in b:
            covered[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = True
        assert not (dark & ~covered).any()


def test_mosaic_samples_keep_their_boxes_on_objects(tmp_path):
    import cv2
    records = []
    for k in range(4):
        img = np.full((300, 500, 3), 255, np.uint8)
        box = np.array([[40 + 60 * k, 60, 120 + 60 * k, 140]], np.float32)
        x1, y1, x2, y2 = box[0].astype(int)
        img[y1:y2, x1:x2] = 0
        cv2.imwrite(str(tmp_path / f"{k}.png"), img)
        records.append(data.Record(tmp_path / f"{k}.png", box, np.array([k], np.int64)))
    dataset = data.TrainSet(records, seed=0, size=256, mosaic=1.0)
    for i in [0, 1, 2, 3] * 2:
        dataset.epoch += 1
        image, boxes, classes = dataset[i]
        dark = image.mean(0).numpy() < 0.5
        assert len(boxes) == len(classes) >= 1
        covered = np.zeros_like(dark)
        for x1, y1, x2, y2 in boxes.numpy():
            inner = dark[int(np.ceil(y1)) + 2:int(y2) - 2, int(np.ceil(x1)) + 2:int(x2) - 2]
            assert inner.size == 0 or inner.mean() > 0.9
            covered[int(y1):int(np.ceil(y2)) + 1, int(x1):int(np.ceil(x2)) + 1] = True
        # Dark pixels outside every box are only objects cut below MIN_VISIBLE at a
        # quarter's edge: never more than a sliver.
        assert (dark & ~covered).sum() <= 0.5 * dark.sum()


def test_smaller_training_crops_keep_the_runtime_scale(tmp_path):
    import cv2
    img = np.full((600, 900, 3), 255, np.uint8)
    img[250:330, 400:520] = 0   # 120 x 80 px: 64 x 42.7 at the runtime scale (320 / 600)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    records = [data.Record(tmp_path / "a.png", np.array([[400, 250, 520, 330]], np.float32),
                           np.array([0], np.int64))]
    sizes = {}
    for size in (data.INPUT, 256):
        dataset = data.TrainSet(records, seed=3, size=size)
        image, boxes, _ = dataset[0]
        assert image.shape == (3, size, size)
        sides = (boxes[:, 2:] - boxes[:, :2]).numpy()
        sizes[size] = sorted(sides.ravel())   # a quarter turn may swap the sides
    # The same draws zoom both samples alike: only the crop window differs.
    np.testing.assert_allclose(sizes[256], sizes[data.INPUT], rtol=0.03)
    zoomed = np.array(sizes[256]) / np.array(sorted([64.0, 42.7]))
    assert 0.5 <= zoomed.min() and zoomed.max() <= 1.9
    # A model with a smaller input sees every object smaller by the same factor.
    image, boxes, _ = data.TrainSet(records, seed=3, size=256, input_side=256)[0]
    assert image.shape == (3, 256, 256)
    sides = sorted((boxes[:, 2:] - boxes[:, :2]).numpy().ravel())
    np.testing.assert_allclose(sides, np.array(sizes[256]) * 256 / data.INPUT, rtol=0.03)


def fake_checkpoint(model=None):
    return {"args": {"parcels": 1, "seed": 0, "batch": 1, "real": []}, "history": [],
            "step": 0, "ema": (model or ParcelNet(8)).state_dict()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = ParcelNet(8).eval()
    for m in model.modules():  # non-trivial batch-norm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2)
    path = tmp_path_factory.mktemp("export") / "net.fp32.onnx"
    export_fp32(model, metadata(fake_checkpoint(model), "net", 128), path, 128)
    return model, path


def test_version_names_the_weights():
    torch.manual_seed(0)
    a, b = ParcelNet(8), ParcelNet(8)
    version = metadata(fake_checkpoint(a), "net", 128)["version"]
    assert re.fullmatch(r"net-e0-s0-[0-9a-f]{8}", version)
    assert version == metadata(fake_checkpoint(a), "net", 128)["version"]
    assert version != metadata(fake_checkpoint(b), "net", 128)["version"]
    # A second stage counts the epochs and steps of the stage it started from, and says so.
    staged = fake_checkpoint(a) | {"history": [{}] * 7, "step": 2100, "args": {
        **fake_checkpoint(a)["args"], "input": 448},
        "stages": [{"input": 320, "epochs": 16, "steps": 4800}]}
    meta = metadata(staged, "net", 448)
    assert re.fullmatch(r"net-e23-s6900-[0-9a-f]{8}", meta["version"])
    assert "16 epochs (4800 steps) at 320 px, then 7 epochs (2100 steps) at 448 px" in \
        meta["training_data"]


def test_export_round_trip_agrees_with_torch(exported):
    model, path = exported
    # The graph takes uint8 pixels and normalises them itself, as the training loader does.
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 128, 128)).astype(np.uint8)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"images": x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x).float() / 255).numpy()
    assert got.shape == want.shape == (2, 16 * 16 + 8 * 8 + 4 * 4, 12)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    assert onnx.load(str(path)).opset_import[0].version >= 17


def test_exported_model_carries_its_metadata(exported):
    _, path = exported
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    for key in ("classes", "input_size", "strides", "mean", "std", "channel_order", "version",
                "training_data"):
        assert key in meta
    det = Detector(path, threads=1)
    assert det.info.classes[0] == "gun" and det.info.input_size == (128, 128)
    assert det.info.pixels and det.input_dtype == np.uint8
    assert json.loads(meta["strides"]) == list(STRIDES)


def test_int8_quantisation_keeps_metadata_and_outputs(exported, tmp_path):
    model, path = exported
    rng = np.random.default_rng(1)
    tiles = rng.integers(0, 256, (16, 3, 128, 128)).astype(np.uint8)
    int8 = tmp_path / "net.int8.onnx"
    quantise(path, int8, tiles)
    proto = onnx.load(str(int8))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert {p.key for p in proto.metadata_props} >= {"classes", "input_size", "strides"}
    # Weights within +-64: AVX2 CPUs without VNNI sum uint8 x int8 pairs in int16, which full
    # 8-bit weights can saturate.
    weights = [onnx.numpy_helper.to_array(t) for t in proto.graph.initializer
               if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert weights and all(-64 <= w.min() and w.max() <= 64 for w in weights)
    x = tiles[:2]
    a = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"images": x})[0]
    b = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"]).run(
        None, {"images": x})[0]
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98


def test_evaluate_scores_each_rendering_folder_too(exported, tmp_path, capsys):
    from edge.config import EdgeConfig
    from models.evaluate import main
    from simulator.dataset import write_dataset
    _, path = exported
    config = EdgeConfig()
    config = config.model_copy(update={"scanner": config.scanner.model_copy(
        update={"threat_share": 1.0})})
    write_dataset(config, 2, tmp_path / "set", seed=5, raw_and_photo=False)
    assert main([str(path), "--data", str(tmp_path / "set"), "--by-folder", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {"all", "colour", "grey"}
    images = {name: r[str(path)]["images"] for name, r in results.items()}
    assert images["all"] == images["colour"] + images["grey"] == 4
    for r in results.values():
        assert 0 <= r[str(path)]["mAP50"] <= 1
    # Each image is detected once for every group it is in; a folder's figures are those of
    # its images scored alone.
    from edge.tools.metrics import json_ready
    from models.data import coco_records
    from models.evaluate import evaluate, onnx_raw
    raw, info = onnx_raw(path)
    colour = [r for r in coco_records(tmp_path / "set") if r.path.parent.name == "colour"]
    alone = json.loads(json.dumps(json_ready(evaluate(raw, info, colour))))
    assert alone == results["colour"][str(path)]


def test_evaluate_scores_each_model_with_its_own_verifier(exported, tmp_path, capsys):
    from test_verify import tiny_verifier

    from edge.config import EdgeConfig
    from models.evaluate import main
    from simulator.dataset import write_dataset
    from simulator.phantoms import THREAT_CLASSES
    _, path = exported
    write_dataset(EdgeConfig(), 1, tmp_path / "set", seed=5, raw_and_photo=False)
    other = tmp_path / "other.fp32.onnx"
    other.write_bytes(path.read_bytes())
    first, second = (tiny_verifier(tmp_path / f"{n}.onnx", THREAT_CLASSES, whiteness=w)
                     for n, w in (("v1", 4.0), ("v2", 8.0)))
    data = ["--data", str(tmp_path / "set"), "--json"]
    assert main([str(path), str(other), *data, "--verifier", str(first), str(second),
                 "--pairs"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == [
        str(path), f"{path} + {first}", str(other), f"{other} + {second}"]
    assert main([str(path), str(other), *data, "--verifier", str(first), str(second)]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 6
    with pytest.raises(SystemExit):
        main([str(path), str(other), *data, "--verifier", str(first), "--pairs"])
    assert "one --verifier per model" in capsys.readouterr().err


def test_training_runs_checkpoints_and_resumes(tmp_path, earlier_head_layout):
    from models.train import main
    args = ["--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"),
            "--parcels", "4", "--val-parcels", "2", "--test-parcels", "2", "--batch", "2",
            "--workers", "0", "--threads", "1", "--max-steps", "2", "--blocks", "1,2,1,1",
            "--input", "256"]
    early = ["--early-crop", "128", "--early-epochs", "1"]
    assert main([*args, *early, "--epochs", "1"]) == 0
    ckpt = torch.load(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 0 and ckpt["step"] == 2
    from models.export import load_ema
    from models.train import input_side
    model, ckpt = load_ema(tmp_path / "run" / "last.pt")   # rebuilt with the run's own depth
    assert input_side(ckpt) == 256   # the export builds its graph for the run's input
    assert [len(s) - 1 for s in (model.s4, model.s8, model.s16, model.s32)] == [1, 2, 1, 1]
    assert main([*args, *early, "--epochs", "2", "--resume", "--max-steps", "4"]) == 0
    ckpt = torch.load(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 4 and len(ckpt["history"]) == 2
    assert [h["crop"] for h in ckpt["history"]] == [128, 256]   # early epochs on small crops
    summary = json.loads((tmp_path / "run" / "train.json").read_text())
    assert 0 <= summary["history"][-1]["val_mAP50"] <= 1
    with pytest.raises(SystemExit, match="256 px input"):   # not resumed at another scale
        main([*args, "--input", "320", "--epochs", "3", "--resume"])
    # A run saved by the earlier head (one norm for all levels) is refused, not half-loaded.
    for part in ("model", "ema"):
        ckpt[part] = earlier_head_layout(ckpt[part])
    torch.save(ckpt, tmp_path / "run" / "last.pt")
    with pytest.raises(SystemExit, match="earlier head"):
        main([*args, "--epochs", "3", "--resume"])


def test_block_counts_are_checked():
    from models.train import parse
    assert parse(["--blocks", "1,2,3,2"]).blocks == (1, 2, 3, 2)
    for bad in ("1,2", "1,a,2,2", "1,-1,2,2"):
        with pytest.raises(SystemExit):
            parse(["--blocks", bad])


def test_runtime_never_imports_torch():
    code = ("import sys, edge.cli, edge.pipeline, edge.detect.model, edge.detect.decode, "
            "edge.tools.metrics, edge.detect.files, edge.tools.labelsets, simulator.scanner; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_gamma_range_is_checked_and_widens_the_contrast_curves():
    from models.train import parse
    assert parse([]).gamma is None
    assert parse(["--gamma", "0.35,2.8"]).gamma == (0.35, 2.8)
    for bad in ("0.5", "2,1", "0,2", "a,b"):
        with pytest.raises(SystemExit):
            parse(["--gamma", bad])
    grey = np.full((40, 40, 3), 128, np.uint8)

    def means(gamma_range):   # mean grey level after each gamma the augmentation drew
        out = [data.photometric(grey, np.random.default_rng(k), gamma_range).mean()
               for k in range(300)]
        return np.array([m for m in out if abs(m - 128) > 1])  # those that drew a curve
    shipped, wide = means(None), means((0.35, 2.8))
    assert shipped.min() > 255 * 0.5 ** 1.6 - 3 and shipped.max() < 255 * 0.5 ** 0.6 + 3
    assert wide.min() < 255 * 0.5 ** 2.0 and wide.max() > 255 * 0.5 ** 0.5


def test_crop_and_input_options_are_checked():
    from models.train import crop_at, parse
    args = parse(["--early-crop", "192", "--early-epochs", "2", "--crop", "256"])
    assert [crop_at(e, args) for e in range(4)] == [192, 192, 256, 256]
    assert [crop_at(e, parse([])) for e in range(2)] == [256, 256]
    assert parse(["--input", "288"]).input == 288 and parse([]).input == data.INPUT
    from models.train import input_side
    assert input_side(fake_checkpoint()) == data.INPUT   # runs from before --input
    for bad in (["--early-crop", "100", "--early-epochs", "2"], ["--early-crop", "192"],
                ["--early-epochs", "3"], ["--crop", "0"], ["--input", "300"], ["--input", "32"]):
        with pytest.raises(SystemExit):
            parse(bad)


@pytest.mark.parametrize("n", [1, 7, 40, 240, 256, 97])
def test_calibration_chunks_divide_the_tiles_and_stay_small(n):
    size = chunk_size(n)
    assert n % size == 0 and 1 <= size <= CALIBRATION_CHUNK
    assert not any(n % d == 0 for d in range(size + 1, min(n, CALIBRATION_CHUNK) + 1))


def test_calibration_reads_every_tile_once_chunk_by_chunk():
    tiles = np.arange(12, dtype=np.uint8).reshape(12, 1, 1, 1)
    reader, seen = Tiles(tiles), []
    for start in range(0, 12, 4):
        reader.set_range(start, start + 4)
        while (item := reader.get_next()) is not None:
            seen.append(int(item["images"][0, 0, 0, 0]))
    assert len(reader) == 12 and seen == list(range(12))


def test_wide_augmentation_reaches_other_scanners_and_keeps_images_valid():
    """``--augment wide``: darker contrast curves than the shipped recipe draws; images keep
    their size and type, and a grey view stays grey through windows, sharpening and JPEG."""
    from models.train import parse
    assert parse([]).augment == "shipped" and parse(["--augment", "wide"]).augment == "wide"
    step = np.full((48, 48, 3), 120, np.uint8)
    step[:, 24:] = 200
    for k in range(200):
        out = data.photometric(step, np.random.default_rng(k), wide=True)
        assert out.shape == step.shape and out.dtype == np.uint8 and data.is_grey(out)
    grey = np.full((40, 40, 3), 128, np.uint8)
    darkest = min(data.photometric(grey, np.random.default_rng(k), wide=True).mean()
                  for k in range(300))
    assert darkest < 255 * 0.5 ** 1.8   # beyond the shipped gamma 1.6


def test_a_labelled_set_is_simulated_on_its_own_and_reused(tmp_path, capsys):
    """``python -m models.data``: the calibration set ``make train`` chooses thresholds on."""
    from models.data import coco_records
    from models.data import main as simulate

    out = tmp_path / "calib"
    assert simulate([str(out), "--parcels", "2", "--seed", "5", "--workers", "1"]) == 0
    annotations = out / "shard-0" / "annotations.json"
    records = coco_records(out / "shard-0")
    assert len(records) == 4   # two parcels, each in colour and grey
    assert "4 images in 1 shards" in capsys.readouterr().out
    written = annotations.stat().st_mtime_ns
    assert simulate([str(out), "--parcels", "2", "--seed", "5", "--workers", "1"]) == 0
    assert annotations.stat().st_mtime_ns == written   # finished shards are not simulated again
    with pytest.raises(SystemExit):
        simulate([str(out), "--parcels", "0", "--seed", "5"])
