"""Training the second look (models/verify.py): candidates mined from the shipped model on
simulated parcels, labelled by their overlap with the truth, a short run, and the export that
the runtime loads and that agrees with torch."""

import numpy as np
import pytest
import torch

from edge.config import SHIPPED_MODEL
from edge.detect.verify import Verifier
from models import verify

CLASSES = ("gun", "gun_part", "ammunition", "knife", "blade", "shuriken", "baton", "explosive")


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    from models.data import coco_records
    from models.data import main as simulate
    root = tmp_path_factory.mktemp("verify")
    simulate([str(root / "sim"), "--parcels", "3", "--seed", "11", "--workers", "1"])
    records = coco_records(root / "sim" / "shard-0")
    return records, verify.mine(SHIPPED_MODEL, records, progress=False)


def test_candidates_take_the_class_of_the_truth_box_they_overlap():
    truth = np.array([[0, 0, 10, 10], [50, 50, 70, 90]], np.float32)
    boxes = np.array([[1, 1, 10, 10], [50, 52, 70, 90], [20, 20, 30, 30], [0, 0, 30, 30]])
    labels = verify.candidate_labels(boxes, truth, np.array([3, 6]), background=8)
    assert labels.tolist() == [3, 6, 8, 8]      # the last overlaps the knife by 0.11 only
    assert verify.candidate_labels(boxes, np.zeros((0, 4)), np.zeros(0, int), 8).tolist() == \
        [8] * 4


def test_mining_keeps_every_truth_box_and_the_model_s_best_candidates(mined):
    records, m = mined
    n = len(m["labels"])
    assert m["crops"].shape == (n, verify.HELD, verify.HELD, 3)
    assert int(m["n_images"]) == len(records)
    truth = m["scores"] < 0
    assert truth.sum() == sum(len(r.boxes) for r in records) > 0
    assert np.all(m["labels"][truth] == m["classes"][truth])    # truth boxes show themselves
    candidates = ~truth
    assert np.all(m["scores"][candidates] >= verify.MINE_SCORE)
    assert np.bincount(m["images"][candidates], minlength=len(records)).max() <= verify.MINE_TOP


def test_an_epoch_sees_every_threat_and_a_fresh_draw_of_background():
    labels = np.array([0] * 10 + [8] * 100)
    rng = np.random.default_rng(0)
    a, b = verify.epoch_order(labels, 8, rng), verify.epoch_order(labels, 8, rng)
    assert len(a) == 10 + 15 and len(set(a.tolist())) == 25
    assert set(range(10)) <= set(a.tolist())
    assert set(a.tolist()) != set(b.tolist())


def test_the_threshold_for_a_share_diverts_that_share_of_threat_images():
    best = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.5])
    threat = np.array([True, True, True, True, False, False])
    assert verify.threshold_for_share(best, threat, 0.75) == 0.7
    assert verify.threshold_for_share(best, threat, 1.0) == 0.6


def test_a_short_run_exports_a_verifier_the_runtime_loads_and_agrees_with_torch(mined, tmp_path):
    _, m = mined
    torch.manual_seed(0)
    out = verify.fit(m, m, CLASSES, tmp_path / "run", epochs=1, batch=8, max_steps=2)
    assert (tmp_path / "run" / "last.pt").is_file()
    assert out["history"][0]["epoch"] == 1
    model = out["model"].eval()
    path = verify.export(model, CLASSES, 0.5, tmp_path / "v.fp32.onnx", "verifier-test")
    runtime = Verifier(path)
    assert runtime.classes == CLASSES and runtime.crop == verify.CROP
    assert runtime.version == "verifier-test"
    crops = np.ascontiguousarray(verify.centre(m["crops"][:6]))
    got = runtime.session.run(None, {"images": crops.transpose(0, 3, 1, 2)})[0]
    want = verify.predict(model, crops)
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(got.sum(1), 1, atol=1e-5)


def test_an_interrupted_run_resumes_where_it_stopped(mined, tmp_path, monkeypatch):
    """Stopped after its first epoch's checkpoint, a run resumed with ``resume`` ends with the
    weights of a run never stopped; another schedule is refused rather than mixed in."""
    _, m = mined
    whole = verify.fit(m, m, CLASSES, tmp_path / "whole", epochs=2, batch=8)
    real, calls = verify.predict, []

    def stopped_in_the_second_epoch(model, crops, batch=128):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(model, crops, batch)

    monkeypatch.setattr(verify, "predict", stopped_in_the_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        verify.fit(m, m, CLASSES, tmp_path / "cut", epochs=2, batch=8)
    monkeypatch.setattr(verify, "predict", real)
    assert torch.load(tmp_path / "cut" / "last.pt")["epoch"] == 1
    resumed = verify.fit(m, m, CLASSES, tmp_path / "cut", epochs=2, batch=8, resume=True)
    assert [row["epoch"] for row in resumed["history"]] == [1, 2]
    untimed = [[{k: v for k, v in row.items() if k != "minutes"} for row in run["history"]]
               for run in (resumed, whole)]
    assert untimed[0] == untimed[1]
    want = whole["model"].state_dict()
    for name, value in resumed["model"].state_dict().items():
        torch.testing.assert_close(value, want[name], msg=name)
    with pytest.raises(SystemExit, match="same --epochs"):
        verify.fit(m, m, CLASSES, tmp_path / "cut", epochs=3, batch=8, resume=True)


def test_the_export_command_writes_an_int8_verifier_the_runtime_loads(mined, tmp_path):
    """``models.verify export`` as ``make train`` calls it: FP32 beside the checkpoint, then
    the INT8 file, tracking the FP32 one."""
    _, m = mined
    verify.fit(m, m, CLASSES, tmp_path / "run", epochs=1, batch=8, max_steps=2)
    np.savez(tmp_path / "calib.npz", **m)
    out = tmp_path / "verifier.int8.onnx"
    assert verify.main(["export", "--checkpoint", str(tmp_path / "run" / "last.pt"),
                        "--model", str(SHIPPED_MODEL), "--calib", str(tmp_path / "calib.npz"),
                        "--out", str(out)]) == 0
    fp32, int8 = Verifier(tmp_path / "run" / "verifier.fp32.onnx"), Verifier(out)
    assert int8.classes == CLASSES and int8.weight == verify.WEIGHT
    assert int8.shape == fp32.shape == verify.mined_shape(m) == verify.SHAPE
    assert int8.version == fp32.version
    crops = np.ascontiguousarray(verify.centre(m["crops"][:8]).transpose(0, 3, 1, 2))
    want = fp32.session.run(None, {"images": crops})[0]
    got = int8.session.run(None, {"images": crops})[0]
    # A network two steps from its initial weights: INT8 tracks FP32, not to the last digit.
    np.testing.assert_allclose(got.sum(1), 1, atol=0.02)
    assert np.abs(got - want).mean() < 0.05
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.9


def test_training_refuses_validation_crops_of_another_shape(mined, tmp_path):
    _, m = mined
    other = dict(m, shape=np.array("box" if verify.SHAPE == "square" else "square"))
    with pytest.raises(SystemExit, match="same --shape"):
        verify.fit(m, other, CLASSES, tmp_path / "run", epochs=1, batch=8, max_steps=1)


def test_wide_views_keep_the_crop_s_size_and_vary_its_palette_and_contrast(mined):
    """The wide views are CROP-side uint8 crops like the shipped ones, and reach further: the
    mean colours of a crop's views spread wider than under the shipped jitter."""
    _, m = mined
    colour = [c for c in m["crops"] if np.ptp(c.astype(int), axis=2).max() > 30][:5]
    assert colour
    rng = np.random.default_rng(0)

    def spread(views):   # how far the views' mean colours lie apart, on the widest channel
        return np.ptp(views.reshape(len(views), -1, 3).mean(1), axis=0).max()
    shipped, wide = [], []
    for held in colour:
        views = np.stack([verify.jittered(held, rng, wide=True) for _ in range(64)])
        assert views.shape == (64, verify.CROP, verify.CROP, 3) and views.dtype == np.uint8
        wide.append(spread(views))
        shipped.append(spread(np.stack([verify.jittered(held, rng) for _ in range(64)])))
    assert np.mean(wide) > 1.3 * np.mean(shipped)


def test_a_run_resumed_with_another_augmentation_is_refused(mined, tmp_path):
    _, m = mined
    verify.fit(m, m, CLASSES, tmp_path / "run", epochs=1, batch=8, max_steps=1)
    assert torch.load(tmp_path / "run" / "last.pt")["augment"] == "shipped"
    with pytest.raises(SystemExit, match="same --augment"):
        verify.fit(m, m, CLASSES, tmp_path / "run", epochs=1, batch=8, max_steps=1,
                   resume=True, augment="wide")
    with pytest.raises(ValueError, match="augment must be"):
        verify.fit(m, m, CLASSES, tmp_path / "other", epochs=1, batch=8, augment="bright")
