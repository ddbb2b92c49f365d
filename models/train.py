"""Train ParcelNet on simulated parcels (and any labelled real scans), deterministically.

    python -m models.train --out runs/parcelnet            # simulate, train, checkpoint
    python -m models.train --out runs/parcelnet --resume   # go on from the last checkpoint

The simulated set is written once to ``--cache`` and reused. Every epoch ends with a checkpoint
and the validation mAP50 of the weight average (EMA) the export will ship. Uses a GPU when
torch sees one; on two CPU cores the default schedule fits in 90 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edge.detect.model import ModelInfo
from models import data
from models.evaluate import evaluate
from models.loss import cell_grid, detection_loss
from models.net import BACKBONES, BLOCKS, STRIDES, ParcelNet, upgrade_state
from models.qat import on_export_grid
from simulator.phantoms import THREAT_CLASSES

MEAN, STD = (0.0, 0.0, 0.0), (255.0, 255.0, 255.0)


def model_info(size: int = data.INPUT) -> ModelInfo:
    # Validated as the runtime runs the exported graph: a parcel that fits in one tile gets a
    # tile cut down to it.
    return ModelInfo(THREAT_CLASSES, (size, size), STRIDES, MEAN, STD, "bgr",
                     fit_to=max(STRIDES))


def input_side(ckpt: dict) -> int:
    """The input side a checkpoint was trained for (runs from before ``--input`` all used
    the default)."""
    return int(ckpt.get("args", {}).get("input", data.INPUT))


class Ema:
    """Exponential moving average of the weights, warmed up so early steps count."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.9995):
        self.model = copy.deepcopy(model).eval()
        self.decay, self.updates = decay, 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 1000))
        for e, m in zip(self.model.state_dict().values(), model.state_dict().values(),
                        strict=True):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(m.detach(), alpha=1 - d)
            else:
                e.copy_(m)


def torch_raw(model: torch.nn.Module, device: torch.device):
    @torch.no_grad()
    def raw(tensor: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(tensor).to(device)).float().cpu().numpy()
    return raw


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def lr_at(step: int, total: int, base: float, warmup: int = 300) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warmup)
                                                      / max(total - warmup, 1))))


# What a resumed run must share with its checkpoint, and the value a checkpoint saved before
# the option existed was trained with.
RECIPE = {"backbone": "parcelnet", "frozen": 3, "frozen_statistics": False, "backbone_lr": 1.0}


def param_groups(model: torch.nn.Module, backbone_share: float) -> list[dict]:
    """The optimiser's parameter groups, each with the share of the base learning rate it
    learns at: one group at 1 unless a pretrained backbone learns at ``backbone_share`` of it
    (that group last, so a run with one group resumes as it was saved)."""
    if model.lite0 is None or backbone_share == 1.0:
        return [{"params": list(model.parameters()), "share": 1.0}]
    backbone = list(model.lite0.parameters())
    ids = {id(p) for p in backbone}
    return [{"params": [p for p in model.parameters() if id(p) not in ids], "share": 1.0},
            {"params": backbone, "share": backbone_share}]


def _blocks(text: str) -> tuple[int, ...]:
    try:
        blocks = tuple(int(v) for v in text.split(","))
    except ValueError:
        blocks = ()
    if len(blocks) != 4 or min(blocks) < 0:
        raise argparse.ArgumentTypeError(f"four block counts like 1,2,3,2, got {text!r}")
    return blocks


def _gamma(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two numbers), got {text!r}") from None
    if not 0 < lo < hi:
        raise argparse.ArgumentTypeError(f"need 0 < LO < HI, got {text!r}")
    return lo, hi


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/parcelnet"))
    p.add_argument("--cache", type=Path, default=Path("data/sim"),
                   help="simulated sets are written here once (train/, val/, test/)")
    p.add_argument("--parcels", type=int, default=2400, help="simulated training parcels")
    p.add_argument("--val-parcels", type=int, default=120)
    p.add_argument("--test-parcels", type=int, default=300)
    p.add_argument("--real", type=Path, nargs="*", default=[],
                   help="labelled real scans to mix in (COCO json, VOC or YOLO folders)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="data loader processes")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--assigner", choices=["centre", "aligned"], default="aligned",
                   help="positives by centre sampling, or by task alignment among them")
    p.add_argument("--blocks", type=_blocks, default=BLOCKS,
                   help="residual blocks per stage, strides 4,8,16,32 (default "
                        f"{','.join(map(str, BLOCKS))}); 1,2,3,2 made a CPU epoch about "
                        "25 % slower")
    p.add_argument("--backbone", choices=BACKBONES, default="parcelnet",
                   help="parcelnet: our own, from random weights; lite0: EfficientNet-Lite0 "
                        "with ImageNet weights (models/lite0.py)")
    p.add_argument("--frozen", type=int, default=3, metavar="N",
                   help="lite0: the stem and this many first blocks keep their ImageNet "
                        "weights and statistics (0-15)")
    p.add_argument("--frozen-statistics", action="store_true",
                   help="lite0: the blocks that learn keep their ImageNet batch statistics "
                        "too (their norms' scales and shifts still learn)")
    p.add_argument("--backbone-lr", type=float, default=1.0, metavar="FACTOR",
                   help="lite0: the learning rate of its blocks that learn, as a share of "
                        "--lr (the pyramid and head learn at --lr)")
    p.add_argument("--decoupled", action="store_true",
                   help="classes and boxes from towers of their own")
    p.add_argument("--mosaic", type=float, default=0.5,
                   help="share of samples made of four half-size crops (more objects per "
                        "step: class learning is starved of objects on two cores)")
    p.add_argument("--input", type=int, default=data.INPUT, metavar="SIDE",
                   help="the model's input side: the runtime scales each parcel's height to it "
                        "(the training crops keep that scale; export carries it)")
    p.add_argument("--crop", type=int, default=256,
                   help="training crop side in pixels, at the runtime's scale (smaller crops "
                        "make cheaper steps: 256 takes about 0.6 of the time of 320)")
    p.add_argument("--early-crop", type=int, default=0, metavar="SIDE",
                   help="a smaller crop side for the first --early-epochs epochs (cheaper "
                        "steps while the model learns the basics; the last epochs at --crop "
                        "fit the batch statistics to the larger view)")
    p.add_argument("--early-epochs", type=int, default=0)
    p.add_argument("--gamma", type=_gamma, default=None, metavar="LO,HI",
                   help="contrast curves of the augmentation, drawn log-uniformly from gamma "
                        "LO to HI (default: 0.6 to 1.6, uniformly, the shipped recipe)")
    p.add_argument("--augment", choices=["shipped", "wide"], default="shipped",
                   help="photometric augmentation: the shipped model's, or wide (palettes, "
                        "contrast curves and windows, noise, sharpening and JPEG towards other "
                        "scanners, short of the styles models.styles holds out; "
                        "models.data.photometric)")
    p.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                   help="start from the weight average of an earlier run's checkpoint (a "
                        "second stage at a larger --input); optimiser and schedule start afresh")
    p.add_argument("--qat", action="store_true",
                   help="run each step on the weights rounded as the INT8 export rounds them, "
                        "updating the float ones (a short last stage with --init: models.qat)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--max-steps", type=int, default=0, help="stop early (smoke tests)")
    args = p.parse_args(argv)
    if args.input % 32 or args.input < 64:
        p.error(f"--input must be a multiple of 32 (the largest stride), 64 or more, got "
                f"{args.input}")
    for name, side, least in (("--crop", args.crop, 64), ("--early-crop", args.early_crop, 0)):
        if side % 64 or side < least:
            p.error(f"{name} must be a multiple of 64 (strides up to 32, and mosaics halve "
                    f"it), got {side}")
    if args.early_epochs < 0 or bool(args.early_epochs) != bool(args.early_crop):
        p.error("--early-crop and --early-epochs go together (both or neither)")
    if args.backbone != "lite0" and (args.frozen_statistics or args.backbone_lr != 1.0):
        p.error("--frozen-statistics and --backbone-lr apply to --backbone lite0 only")
    if not 0 < args.backbone_lr <= 1:
        p.error(f"--backbone-lr must be in (0, 1], got {args.backbone_lr}")
    return args


def crop_at(epoch: int, args) -> int:
    """The training crop side in this epoch (0-based)."""
    return args.early_crop if epoch < args.early_epochs else args.crop


def init_weights(model: torch.nn.Module, ema: Ema, path: Path,
                 device: torch.device) -> list[dict]:
    """Load an earlier run's weight average into the model and its EMA; return the stages that
    made it (input side, epochs, steps each). Convolutions do not depend on the input side, so
    a model trained at one scale goes on at another."""
    if not path.is_file():
        raise SystemExit(f"--init {path}: no such checkpoint")
    ckpt = torch.load(path, map_location=device)
    try:
        model.load_state_dict(ckpt["ema"])
    except RuntimeError as err:
        raise SystemExit(f"--init {path}: its network differs from this one ({err})") from None
    ema.model.load_state_dict(ckpt["ema"])
    print(f"initialised from {path} (trained for a {input_side(ckpt)} px input)", flush=True)
    return stages_of(ckpt)


def stages_of(ckpt: dict) -> list[dict]:
    """Every stage that made a checkpoint, its own last: input side, epochs and steps each."""
    return ckpt.get("stages", []) + [{"input": input_side(ckpt), "epochs": len(ckpt["history"]),
                                      "steps": ckpt["step"]}]


def real_records(paths: list[Path]) -> list[data.Record]:
    from edge.tools.labelsets import read_labelset
    records = []
    for path in paths:
        for item in read_labelset(path):
            known = [i for i, lab in enumerate(item.labels) if lab in THREAT_CLASSES]
            records.append(data.Record(item.path, item.boxes[known].astype(np.float32),
                                       np.array([THREAT_CLASSES.index(item.labels[i])
                                                 for i in known], np.int64)))
    return records


def split_records(cache: Path, name: str, parcels: int, seed: int) -> list[data.Record]:
    folders = data.generate(cache / name, parcels, seed)
    return [r for f in folders for r in data.coco_records(f)]


def main(argv=None) -> int:
    args = parse(argv)
    seed_everything(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.time()
    train = split_records(args.cache, "train", args.parcels, 1 + args.seed)
    val = split_records(args.cache, "val", args.val_parcels, 1001 + args.seed)
    split_records(args.cache, "test", args.test_parcels, 2001 + args.seed)
    train += real_records(args.real)
    print(f"data: {len(train)} training images, {len(val)} validation images "
          f"({time.time() - started:.0f} s)", flush=True)

    # Channels-last convolutions ran about 8 % faster on two CPU cores (oneDNN).
    model = ParcelNet(len(THREAT_CLASSES), blocks=args.blocks, decoupled=args.decoupled,
                      backbone=args.backbone, frozen=args.frozen,
                      frozen_statistics=args.frozen_statistics).to(
        device, memory_format=torch.channels_last)
    ema = Ema(model)
    opt = torch.optim.AdamW(param_groups(model, args.backbone_lr), lr=args.lr,
                            weight_decay=5e-4)
    dataset = data.TrainSet(train, args.seed, size=args.crop, progress=True,
                            mosaic=args.mosaic, gamma=args.gamma, input_side=args.input,
                            wide=args.augment == "wide")
    per_epoch = len(dataset) // args.batch
    total = per_epoch * args.epochs
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.out / "last.pt"
    start_epoch, step, history, stages = 0, 0, [], []
    resuming = args.resume and ckpt_path.is_file()
    if args.init and not resuming:
        stages = init_weights(model, ema, args.init, device)
    if resuming:
        ckpt = torch.load(ckpt_path, map_location=device)
        if upgrade_state(ckpt["model"]).keys() != ckpt["model"].keys():
            raise SystemExit(f"{ckpt_path} was saved by the earlier head (one batch norm for all "
                             "levels): it exports (models.export) but cannot be resumed; "
                             "train into a new --out")
        if input_side(ckpt) != args.input:
            raise SystemExit(f"{ckpt_path} was trained for a {input_side(ckpt)} px input, not "
                             f"{args.input}: resume with --input {input_side(ckpt)}")
        saved = {name: ckpt["args"].get(name, default) for name, default in RECIPE.items()
                 if name == "backbone" or args.backbone == "lite0"}
        other = {name: value for name, value in saved.items() if value != getattr(args, name)}
        if other:
            raise SystemExit(f"{ckpt_path} was trained with other " + ", ".join(
                f"--{name.replace('_', '-')} ({value})" for name, value in other.items())
                + ": resume with the same, or train into a new --out")
        model.load_state_dict(ckpt["model"])
        ema.model.load_state_dict(ckpt["ema"])
        ema.updates = ckpt["ema_updates"]
        opt.load_state_dict(ckpt["opt"])
        start_epoch, step, history = ckpt["epoch"] + 1, ckpt["step"], ckpt["history"]
        stages = ckpt.get("stages", [])
        print(f"resumed after epoch {start_epoch}, step {step}")
    info = model_info(args.input)
    for epoch in range(start_epoch, args.epochs):
        dataset.epoch = epoch
        dataset.size = crop_at(epoch, args)
        centres, strides = cell_grid((dataset.size, dataset.size), STRIDES, device)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=args.batch, shuffle=True, drop_last=True,
            num_workers=args.workers, collate_fn=data.collate, persistent_workers=False,
            generator=torch.Generator().manual_seed(args.seed * 100 + epoch))
        model.train()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs} ({dataset.size} px)",
                   file=sys.stdout, mininterval=10)
        for images, boxes, classes, valid in bar:
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, args.lr) * group.get("share", 1.0)
            with on_export_grid(model) if args.qat else contextlib.nullcontext():
                pred = model(images.to(device, memory_format=torch.channels_last))
                loss, parts = detection_loss(pred, boxes.to(device), classes.to(device),
                                             valid.to(device), centres, strides,
                                             aligned=args.assigner == "aligned")
                opt.zero_grad(set_to_none=True)
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            ema.update(model)
            step += 1
            bar.set_postfix(loss=f"{loss.item():.3f}", cls=f"{parts['cls']:.3f}",
                            box=f"{parts['box']:.3f}", ce=f"{parts['ce']:.3f}")
            if args.max_steps and step >= args.max_steps:
                break
        scores = evaluate(torch_raw(ema.model, device), info, val)
        history.append({"epoch": epoch + 1, "step": step, "crop": dataset.size,
                        "val_mAP50": scores["mAP50"],
                        "minutes": round((time.time() - started) / 60, 1)})
        per_class = ", ".join(f"{k} {v['AP50']:.2f}" for k, v in scores["classes"].items())
        print(f"epoch {epoch + 1}: val mAP50 {scores['mAP50']:.3f} ({per_class})", flush=True)
        torch.save({"model": model.state_dict(), "ema": ema.model.state_dict(),
                    "ema_updates": ema.updates, "opt": opt.state_dict(), "epoch": epoch,
                    "step": step, "history": history, "stages": stages, "args": vars(args) | {
                        "out": str(args.out), "cache": str(args.cache),
                        "init": str(args.init) if args.init else None,
                        "real": [str(r) for r in args.real]}}, ckpt_path)
        if args.max_steps and step >= args.max_steps:
            break
    summary = {"images": len(train), "parcels": args.parcels, "epochs": len(history),
               "steps": step, "minutes": round((time.time() - started) / 60, 1),
               "device": str(device), "history": history}
    (args.out / "train.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
