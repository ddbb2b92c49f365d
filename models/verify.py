"""Training the second look (edge.detect.verify): a classifier over crops of the detector's
candidate boxes, cut from the full-resolution image, that says which threat class each shows
or none. At run time a candidate keeps its detector score times P(a threat) ** ``WEIGHT``.

It learns from the detector's own candidates on simulated parcels (``mine``; ``make train``
gives it the detector's training parcels), so it sees the kind of false alarms the runtime
raises.

    python -m models.verify mine --model models/lite0/lite0.int8.onnx \
        --data data/sim/train/shard-* --out runs/verify/train.npz
    python -m models.verify train --mined runs/verify/train.npz --val runs/verify/val.npz \
        --model models/lite0/lite0.int8.onnx --out runs/verify
    python -m models.verify export --checkpoint runs/verify/last.pt \
        --model models/lite0/lite0.int8.onnx --calib runs/verify/calib.npz \
        --out models/lite0/verifier.int8.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.detect.boxes import box_iou
from edge.detect.verify import EMPTY_BELT, FLOOR, SHAPES, UNSHAPED, crops_of, rescored

CROP = 128          # the verifier's input side
CONTEXT = 1.6       # the crop's span over the candidate's side
SHAPE = "box"       # how a candidate becomes a crop (edge.detect.verify.crops_of)
MIN_SIDE = 40       # px of the full image: small candidates keep this much context
HELD = 160          # crops are held larger than CROP so training can jitter them
MATCH_IOU = 0.5     # a candidate shows a threat when it overlaps its box this much
MINE_SCORE = FLOOR  # candidates below the runtime's floor are never looked at again
MINE_TOP = 10       # and at most this many per image
WEIGHT = 0.5        # a candidate keeps score x P(a threat) ** WEIGHT
CALIBRATION_CROPS = 512   # crops that set the INT8 activation ranges
BACKGROUND_PER_THREAT = 1.5   # false candidates drawn per true one in each training epoch
AUGMENTS = ("shipped", "wide")


def candidate_labels(boxes: np.ndarray, truth_boxes: np.ndarray, truth_classes: np.ndarray,
                     background: int) -> np.ndarray:
    """The class each candidate shows: that of the truth box it overlaps most, if by at least
    ``MATCH_IOU``; ``background`` otherwise."""
    labels = np.full(len(boxes), background, np.int64)
    if len(boxes) and len(truth_boxes):
        iou = box_iou(boxes, truth_boxes)
        best = iou.argmax(1)
        hit = iou[np.arange(len(boxes)), best] >= MATCH_IOU
        labels[hit] = truth_classes[best[hit]]
    return labels


def mine(model: Path, records: Sequence, progress: bool = True,
         shape: str = SHAPE) -> dict[str, np.ndarray]:
    """The detector's candidates on ``records`` and every truth box, as held crops of
    ``shape`` with their labels; candidates keep their detector score and class (truth boxes
    score -1)."""
    from edge.detect.model import Detector, detect_with
    from models.data import read_bgr
    detector = Detector(model, threads=2)
    background = len(detector.info.classes)
    crops, labels, scores, classes, images, kept = [], [], [], [], [], []
    items = records
    if progress:
        from tqdm import tqdm
        items = tqdm(records, desc="mine", leave=False)
    for index, r in enumerate(items):
        image = read_bgr(r.path)
        found = detect_with(detector.raw, detector.info, image, MINE_SCORE, 0.5)
        keep = np.argsort(-found.score)[:MINE_TOP]
        boxes = np.concatenate([found.xyxy[keep], r.boxes]).astype(np.float32)
        crops.append(crops_of(shape, image, boxes, HELD, CONTEXT * HELD / CROP, MIN_SIDE))
        labels.append(candidate_labels(boxes, r.boxes, r.classes, background))
        scores.append(np.concatenate([found.score[keep], -np.ones(len(r.boxes))]))
        classes.append(np.concatenate([found.class_id[keep], r.classes]))
        images.append(np.full(len(boxes), index))
        kept.append(boxes)
    return {"n_images": np.array(len(records)), "shape": np.array(shape),
            "crops": np.concatenate(crops), "labels": np.concatenate(labels),
            "boxes": np.concatenate(kept),
            "scores": np.concatenate(scores).astype(np.float32),
            "classes": np.concatenate(classes).astype(np.int64),
            "images": np.concatenate(images)}


def jittered(held: np.ndarray, rng: np.random.Generator, wide: bool = False) -> np.ndarray:
    """A CROP-side view of one held crop, its scale, place, orientation and contrast jittered
    as a candidate box of the detector would be. ``wide``: then the detector's wide
    photometric augmentation (``models.data.photometric``: palettes, contrast curves, noise,
    display windows, sharpening, JPEG), towards what other scanners show."""
    span = CROP * rng.uniform(0.85, 1.15)
    cx, cy = HELD / 2 + rng.uniform(-0.08, 0.08, 2) * CROP
    scale = CROP / span
    m = np.array([[scale, 0, CROP / 2 - cx * scale], [0, scale, CROP / 2 - cy * scale]])
    view = cv2.warpAffine(held, m, (CROP, CROP), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=EMPTY_BELT)
    view = np.rot90(view, int(rng.integers(4)))
    if rng.random() < 0.5:
        view = view[:, ::-1]
    gamma = np.exp(rng.uniform(-0.25, 0.25))   # drawn either way: one random stream for both
    if wide:
        from models.data import photometric
        return photometric(np.ascontiguousarray(view), rng, wide=True)
    lut = np.clip(255 * (np.arange(256) / 255) ** gamma, 0, 255).astype(np.uint8)
    return lut[view]


def network(classes: int, pretrained: bool = True):
    """Lite0's blocks up to stride 32, pooled at strides 16 and 32, into classes + 1 (none)."""
    import torch
    from torch import nn

    from models.lite0 import CHANNELS, Lite0Backbone

    class Verifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = Lite0Backbone(pretrained=pretrained, frozen=3)
            self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(sum(CHANNELS[1:]), classes + 1))

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            """uint8 BGR [N, 3, CROP, CROP] -> class logits [N, classes + 1]."""
            taps = self.backbone(pixels.float() / 255)
            return self.head(torch.cat([t.mean((2, 3)) for t in taps[1:]], 1))

    return Verifier()


def predict(model, crops: np.ndarray, batch: int = 128) -> np.ndarray:
    import torch
    out = []
    with torch.no_grad():
        for k in range(0, len(crops), batch):
            x = torch.from_numpy(np.ascontiguousarray(crops[k:k + batch])).permute(0, 3, 1, 2)
            out.append(model(x).softmax(1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def centre(held: np.ndarray) -> np.ndarray:
    """The CROP-side views of held crops at the detector's own boxes, as the runtime cuts them
    (the held crop spans HELD / CROP times the context at the same scale)."""
    lo = (HELD - CROP) // 2
    return held[:, lo:lo + CROP, lo:lo + CROP]


def scores_by_image(mined: dict, scores: np.ndarray):
    """(detections, truth) per image of a mined set, for edge.tools.metrics.Accumulator."""
    from edge.types import Detections
    images = mined["images"]
    for index in np.unique(images):
        at = images == index
        cand = at & (mined["scores"] >= 0)
        truth = at & (mined["scores"] < 0)
        yield (Detections(mined["boxes"][cand], scores[cand], mined["classes"][cand]),
               Detections(mined["boxes"][truth], np.ones(int(truth.sum()), np.float32),
                          mined["classes"][truth]))


def judged(mined: dict, scores: np.ndarray, names: Sequence[str]) -> dict:
    """Per-class AP50 and mAP50 of a mined set's candidates scored ``scores``."""
    from edge.tools.metrics import Accumulator
    acc = Accumulator()
    for found, truth in scores_by_image(mined, scores):
        acc.add(found, truth)
    return acc.summary(list(names))


def image_best(mined: dict, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: the best candidate score, and whether the image holds a threat."""
    images = mined["images"]
    n = int(mined["n_images"]) if "n_images" in mined else int(images.max()) + 1
    best = np.zeros(n, np.float32)
    cand = mined["scores"] >= 0
    np.maximum.at(best, images[cand], scores[cand])
    threat = np.zeros(n, bool)
    threat[images[~cand]] = True
    return best, threat


def epoch_order(labels: np.ndarray, background: int, rng: np.random.Generator,
                per_threat: float = BACKGROUND_PER_THREAT) -> np.ndarray:
    """Every threat crop and a fresh draw of ``per_threat`` background crops for each, shuffled:
    false candidates outnumber true ones four to one, and each epoch sees other ones."""
    threats = np.flatnonzero(labels != background)
    others = np.flatnonzero(labels == background)
    drawn = rng.choice(others, min(len(others), int(per_threat * len(threats))), replace=False)
    return rng.permutation(np.concatenate([threats, drawn]))


def fit(train: dict, val: dict, names: Sequence[str], out: Path, epochs: int = 6,
        batch: int = 64, lr: float = 1e-3, seed: int = 0, max_steps: int = 0,
        resume: bool = False, augment: str = "shipped") -> dict:
    """Trains the verifier on mined crops; after each epoch, prints the validation set's
    mAP50 with the detector's scores alone and rescored, and saves ``out/last.pt``.
    ``resume``: go on after the last epoch saved there (same ``epochs``, ``batch`` and
    ``augment``). ``augment``: "shipped" (scale, place, orientation, contrast) or "wide"
    (see ``jittered``)."""
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {AUGMENTS}, not {augment!r}")
    import torch
    shape = mined_shape(train)
    if mined_shape(val) != shape:
        raise SystemExit(f"training crops are {shape!r} crops, validation ones "
                         f"{mined_shape(val)!r}: mine both with the same --shape")
    torch.manual_seed(seed)
    model = network(len(names))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    background = len(names)
    per_epoch = -(-len(epoch_order(train["labels"], background, np.random.default_rng(seed)))
                  // batch)
    total = epochs * per_epoch if not max_steps else min(max_steps, epochs * per_epoch)
    warm = min(200, total // 10 + 1)
    # Plain floats, so that the checkpoint loads with torch.load's weights_only.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: float(
        min(1.0, (k + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(k, total) / total))))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    out.mkdir(parents=True, exist_ok=True)
    history, step, first = [], 0, 0
    if resume and (out / "last.pt").is_file():
        ckpt = torch.load(out / "last.pt", map_location="cpu")
        if (ckpt.get("total"), ckpt.get("batch")) != (total, batch):
            raise SystemExit(f"{out / 'last.pt'} was saved by a run of {ckpt.get('total')} "
                             f"steps of {ckpt.get('batch')}; this one has {total} of {batch}: "
                             f"resume with the same --epochs and --batch, or start over")
        if ckpt.get("augment", "shipped") != augment:
            raise SystemExit(f"{out / 'last.pt'} was trained with --augment "
                             f"{ckpt.get('augment', 'shipped')}; this run asks for {augment}: "
                             f"resume with the same --augment, or start over")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        history, step, first = ckpt["history"], ckpt["step"], ckpt["epoch"]
        torch.set_rng_state(ckpt["torch_rng"])
        print(f"resumed after epoch {first}, step {step}", flush=True)
    started = time.time()
    for epoch in range(first, epochs if step < total else first):
        model.train()
        # Each epoch's draw and jitter depend on the seed and the epoch alone, so a resumed
        # run sees the crops an uninterrupted one would.
        rng = np.random.default_rng((seed, epoch))
        order = epoch_order(train["labels"], background, rng)
        for k in range(0, len(order), batch):
            pick = order[k:k + batch]
            x = np.stack([jittered(train["crops"][i], rng, augment == "wide") for i in pick])
            x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
            loss = loss_fn(model(x), torch.from_numpy(train["labels"][pick]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0:
                print(f"epoch {epoch + 1} step {step}/{total} loss {loss.item():.3f} "
                      f"({time.time() - started:.0f} s)", flush=True)
            if step >= total:
                break
        model.eval()
        probs = predict(model, centre(val["crops"]))
        row = {"epoch": epoch + 1, "minutes": round((time.time() - started) / 60, 1),
               "accuracy": float((probs.argmax(1) == val["labels"]).mean())}
        for weight in (0.0, 0.5, 1.0):
            new = rescored(val["scores"].clip(0), probs, weight)
            row[f"map50_w{weight}"] = judged(val, new, names)["mAP50"]
        history.append(row)
        print(json.dumps(row), flush=True)
        # Written aside, then renamed: an interruption mid-write leaves the last one whole.
        torch.save({"model": model.state_dict(), "epoch": epoch + 1, "history": history,
                    "classes": list(names), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "step": step, "total": total,
                    "batch": batch, "torch_rng": torch.get_rng_state(), "shape": shape,
                    "augment": augment},
                   out / "last.pt.part")
        (out / "last.pt.part").replace(out / "last.pt")
        if step >= total:
            break
    return {"model": model, "history": history}


def export(model, names: Sequence[str], weight: float, out: Path, version: str,
           shape: str = SHAPE) -> Path:
    """The verifier as an ONNX file the runtime loads (edge.detect.verify.Verifier): uint8
    BGR crops [N, 3, CROP, CROP] in, probabilities [N, classes + 1] out, metadata attached.
    FP32: a crop is a fraction of a tile, and a few candidates per parcel cost little."""
    import onnx
    import torch

    class Probabilities(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, pixels):
            return self.net(pixels).softmax(1)

    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(Probabilities().eval(), (torch.zeros(1, 3, CROP, CROP, dtype=torch.uint8),),
                      str(out), input_names=["images"], output_names=["probs"],
                      dynamic_axes={"images": {0: "batch"}, "probs": {0: "batch"}},
                      opset_version=17, dynamo=False)
    proto = onnx.load(str(out))
    meta = {"classes": json.dumps(list(names)), "crop": json.dumps(CROP),
            "context": json.dumps(CONTEXT), "min_side": json.dumps(MIN_SIDE),
            "weight": json.dumps(weight), "shape": json.dumps(shape), "version": version}
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    return out


def threshold_for_share(best: np.ndarray, threat: np.ndarray, share: float) -> float:
    """The highest threshold at which at least ``share`` of the threat images have a candidate
    at or above it."""
    scores = np.sort(best[threat])[::-1]
    return float(scores[max(0, int(np.ceil(share * len(scores))) - 1)])


def compare(model, sets: dict[str, dict], choose_on: str, names: Sequence[str],
            weights: Sequence[float] = (0.0, 0.5, 1.0, 2.0), share: float = 0.95) -> list[dict]:
    """Per weight (0: the detector alone): mAP50 and per-class AP50 on every set, and the share
    of threat and clear images diverted at the threshold that diverts ``share`` of the threat
    images of ``choose_on``."""
    probs = {name: predict(model, centre(m["crops"])) for name, m in sets.items()}
    rows = []
    for weight in weights:
        new = {name: rescored(m["scores"].clip(0), probs[name], weight)
               for name, m in sets.items()}
        best, threat = image_best(sets[choose_on], new[choose_on])
        threshold = threshold_for_share(best, threat, share)
        row = {"weight": weight, "threshold": threshold}
        for name, m in sets.items():
            summary = judged(m, new[name], names)
            best, threat = image_best(m, new[name])
            row[name] = {"mAP50": summary["mAP50"],
                         "AP50": {c: v["AP50"] for c, v in summary["classes"].items()},
                         "threat_diverted": float((best[threat] >= threshold).mean()),
                         "clear_diverted": float((best[~threat] >= threshold).mean())}
        rows.append(row)
    return rows


def mined_shape(mined: dict) -> str:
    """The crop shape a mined set was cut in."""
    return str(mined["shape"]) if "shape" in mined else UNSHAPED


def load_mined(path: Path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mine", help="the detector's candidates on labelled images, as crops")
    m.add_argument("--model", type=Path, required=True)
    m.add_argument("--data", type=Path, nargs="+", required=True)
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--shape", choices=SHAPES, default=SHAPE,
                   help="how a candidate becomes a crop (edge.detect.verify.crops_of)")
    t = sub.add_parser("train", help="train the verifier on mined crops")
    t.add_argument("--mined", type=Path, required=True)
    t.add_argument("--val", type=Path, required=True)
    t.add_argument("--model", type=Path, required=True, help="the detector (class names)")
    t.add_argument("--out", type=Path, default=Path("runs/verify"))
    t.add_argument("--epochs", type=int, default=6)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--max-steps", type=int, default=0)
    t.add_argument("--resume", action="store_true",
                   help="go on after the last epoch saved in --out")
    t.add_argument("--augment", choices=AUGMENTS, default="shipped",
                   help="crop jitter alone, or with the detector's wide photometric "
                        "augmentation (palettes, contrast curves, noise, display effects)")
    j = sub.add_parser("judge", help="the detector alone against rescored, on mined sets")
    j.add_argument("--checkpoint", type=Path, required=True)
    j.add_argument("--model", type=Path, required=True, help="the detector (class names)")
    j.add_argument("--sets", type=Path, nargs="+", required=True,
                   help="mined sets; the first chooses the threshold")
    e = sub.add_parser("export", help="FP32 and INT8 ONNX files of a trained verifier")
    e.add_argument("--checkpoint", type=Path, required=True)
    e.add_argument("--model", type=Path, required=True, help="the detector (class names)")
    e.add_argument("--calib", type=Path, required=True, help="mined crops for INT8 ranges")
    e.add_argument("--weight", type=float, default=WEIGHT)
    e.add_argument("--out", type=Path, required=True, help="the INT8 file")
    args = parser.parse_args(argv)
    if args.command == "export":
        import torch

        from edge.detect.model import Detector
        from models.export import quantise, weights_digest
        names = Detector(args.model, threads=1).info.classes
        ckpt = torch.load(args.checkpoint, map_location="cpu")
        model = network(len(names), pretrained=False)
        model.load_state_dict(ckpt["model"])
        version = f"verifier-e{ckpt['epoch']}-{weights_digest({'ema': ckpt['model']})}"
        fp32 = export(model.eval(), names, args.weight,
                      args.checkpoint.parent / "verifier.fp32.onnx", version,
                      ckpt.get("shape", UNSHAPED))
        crops = centre(load_mined(args.calib)["crops"])
        pick = np.random.default_rng(0).choice(len(crops), min(CALIBRATION_CROPS, len(crops)),
                                               replace=False)
        quantise(fp32, args.out, np.ascontiguousarray(crops[np.sort(pick)].transpose(0, 3, 1, 2)))
        print(f"{fp32} and {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
        return 0
    if args.command == "judge":
        import torch

        from edge.detect.model import Detector
        names = Detector(args.model, threads=1).info.classes
        model = network(len(names), pretrained=False)
        model.load_state_dict(torch.load(args.checkpoint, map_location="cpu")["model"])
        sets = {p.stem: load_mined(p) for p in args.sets}
        for row in compare(model.eval(), sets, args.sets[0].stem, names):
            print(json.dumps(row))
        return 0
    if args.command == "mine":
        from models.data import coco_records
        records = [r for folder in args.data for r in coco_records(folder)]
        started = time.time()
        mined = mine(args.model, records, shape=args.shape)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        part = args.out.with_name(args.out.name + ".part.npz")
        np.savez(part, **mined)        # renamed once whole: a resumed make train reuses it
        part.replace(args.out)
        counts = np.bincount(mined["labels"])
        print(f"{len(mined['labels'])} crops from {len(records)} images "
              f"({time.time() - started:.0f} s); by label {counts.tolist()}")
        return 0
    import torch

    from edge.detect.model import Detector
    torch.set_num_threads(args.threads)
    names = Detector(args.model, threads=1).info.classes
    fit(load_mined(args.mined), load_mined(args.val), names, args.out, args.epochs, args.batch,
        args.lr, max_steps=args.max_steps, resume=args.resume, augment=args.augment)
    return 0


if __name__ == "__main__":
    sys.exit(main())
