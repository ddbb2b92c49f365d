"""Export a trained ParcelNet to ONNX with its metadata, then quantise it to static INT8 (QDQ).

    python -m models.export --checkpoint runs/parcelnet/last.pt --name parcelnet

writes ``models/<name>/<name>.int8.onnx`` (shipped) and ``runs/<name>/<name>.fp32.onnx`` (kept
for comparison), after checking that onnxruntime reproduces the torch outputs. The INT8
calibration set follows ``calibration/int8.md``: simulated validation parcels, both
renderings, cut into model input by the runtime's own ``edge.detect.pre.prepare``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edge.detect.pre import prepare
from models import data
from models.graph import narrowed
from models.net import BLOCKS, STRIDES, ParcelNet, upgrade_state
from models.train import MEAN, STD, input_side, stages_of
from simulator.phantoms import THREAT_CLASSES

OPSET = 17
CALIBRATION_TILES = 256
# Tiles whose activations are held at once while calibrating: every tile of a Lite0 at 320 px
# at once (240) overran 24 GB; the histograms gather chunk by chunk.
CALIBRATION_CHUNK = 32


def load_ema(checkpoint: Path) -> tuple[ParcelNet, dict]:
    ckpt = torch.load(checkpoint, map_location="cpu")
    args = ckpt["args"]
    # The checkpoint holds every weight: no ImageNet weights are read for an export.
    model = ParcelNet(len(THREAT_CLASSES), blocks=tuple(args.get("blocks", BLOCKS)),
                      decoupled=args.get("decoupled", False),
                      backbone=args.get("backbone", "parcelnet"),
                      frozen=args.get("frozen", 3), pretrained=False)
    model.load_state_dict(upgrade_state(ckpt["ema"]))
    return model.eval(), ckpt


def metadata(ckpt: dict, name: str, size: int) -> dict[str, str]:
    args = ckpt["args"]
    stages = stages_of(ckpt)
    schedule = ", then ".join(f"{s['epochs']} epochs ({s['steps']} steps) at {s['input']} px"
                              for s in stages)
    summary = (f"simulated parcels only: {args['parcels']} parcels x (colour, grey) from the "
               f"edge scanner simulator, seed {args['seed']}, {schedule}, batch "
               f"{args['batch']}; real scans mixed in: {', '.join(args['real']) or 'none'}")
    epochs, steps = sum(s["epochs"] for s in stages), sum(s["steps"] for s in stages)
    return {"classes": json.dumps(list(THREAT_CLASSES)), "input_size": json.dumps([size, size]),
            "strides": json.dumps(list(STRIDES)), "mean": json.dumps(list(MEAN)),
            "std": json.dumps(list(STD)), "channel_order": "bgr",
            "version": f"{name}-e{epochs}-s{steps}-{weights_digest(ckpt)}",
            "training_data": summary}


def weights_digest(ckpt: dict) -> str:
    """Eight hex digits of a hash of the shipped (EMA) weights: two runs of the same length
    with different recipes get different versions."""
    digest = hashlib.sha256()
    for key, tensor in ckpt["ema"].items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:8]


class PixelInput(torch.nn.Module):
    """The network behind its own normalisation: the graph takes uint8 pixels, so the runtime
    hands over the resized image as it is (no float conversion on the CPU per parcel)."""

    def __init__(self, model: torch.nn.Module, mean=MEAN, std=STD):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("scale", 1 / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels.float() - self.mean) * self.scale)


def export_fp32(model: ParcelNet, meta: dict[str, str], out: Path, size: int) -> None:
    dummy = torch.zeros(1, 3, size, size, dtype=torch.uint8)
    # Height and width free: the runtime feeds a parcel that fits in one tile as a tile cut
    # down to it (multiples of 32, which every layer pads alike).
    torch.onnx.export(PixelInput(model).eval(), (dummy,), str(out), input_names=["images"],
                      output_names=["preds"],
                      dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                    "preds": {0: "batch", 1: "cells"}},
                      opset_version=OPSET, dynamo=False)
    proto = onnx.load(str(out))
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))


def calibration_tiles(records: list[data.Record], size: int, limit: int) -> np.ndarray:
    # Full-size tiles (they stack into one array): a tile cut down to a short parcel holds
    # the same pixels less some white padding, so the activation ranges are the same.
    tiles = []
    for r in records:
        batch = prepare(data.read_bgr(r.path), (size, size), MEAN, STD, "bgr", pixels=True)
        tiles.extend(batch.tensor)
        if len(tiles) >= limit:
            break
    return np.stack(tiles[:limit])


class Tiles(CalibrationDataReader):
    """Calibration tiles, read a chunk at a time (``set_range``): onnxruntime holds every
    activation of the tiles it has read until the reader runs dry."""

    def __init__(self, tiles: np.ndarray):
        self.tiles = tiles
        self.set_range(0, len(tiles))

    def __len__(self) -> int:
        return len(self.tiles)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.items = iter([{"images": t[None]} for t in self.tiles[start_index:end_index]])

    def get_next(self):
        return next(self.items, None)


def chunk_size(n: int) -> int:
    """The largest chunk of at most ``CALIBRATION_CHUNK`` tiles that divides ``n`` (onnxruntime
    takes equal chunks only)."""
    return max(d for d in range(1, min(n, CALIBRATION_CHUNK) + 1) if n % d == 0)


def quantise(fp32: Path, out: Path, tiles: np.ndarray) -> None:
    prepared = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(out), Tiles(tiles), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile,
                    extra_options={"CalibPercentile": 99.999,
                                   "CalibStridedMinMax": chunk_size(len(tiles))})
    prepared.unlink()
    # Dense convolutions' weights held to 7 bits, or CPUs without VNNI saturate them (models.graph
    # .narrowed, calibration/int8.md); depthwise ones keep 8.
    proto, _ = narrowed(onnx.load(str(out)))
    # quantize_static keeps metadata only sometimes: copy it across explicitly.
    meta = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(out))


def round_trip_error(model: ParcelNet, onnx_path: Path, tiles: np.ndarray) -> float:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": tiles})[0]
    with torch.no_grad():
        want = PixelInput(model).eval()(torch.from_numpy(tiles)).numpy()
    return float(np.abs(got - want).max())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=Path("runs/parcelnet/last.pt"))
    p.add_argument("--name", default="parcelnet")
    p.add_argument("--calibration", type=Path, default=Path("data/sim/val"),
                   help="folder of simulated shards (calibration/int8.md)")
    p.add_argument("--input", type=int, default=0, metavar="SIDE",
                   help="the exported graph's input side (default: the one it was trained "
                        "for); the runtime scales each parcel's height to it, so a larger "
                        "side runs the same network on a finer image")
    p.add_argument("--to", type=Path, default=None, metavar="DIR",
                   help="where the INT8 file goes (default: models/<name>, the shipped place)")
    args = p.parse_args(argv)
    model, ckpt = load_ema(args.checkpoint)
    size = args.input or input_side(ckpt)
    if size % 32 or size < 64:
        p.error(f"--input must be a multiple of 32 (the largest stride), 64 or more, got {size}")
    work = Path("runs") / args.name
    ship = args.to or Path("models") / args.name
    work.mkdir(parents=True, exist_ok=True)
    ship.mkdir(parents=True, exist_ok=True)
    fp32, int8 = work / f"{args.name}.fp32.onnx", ship / f"{args.name}.int8.onnx"
    export_fp32(model, metadata(ckpt, args.name, size), fp32, size)
    records = [r for shard in sorted(args.calibration.glob("shard-*"))
               for r in data.coco_records(shard)]
    tiles = calibration_tiles(records, size, CALIBRATION_TILES)
    narrow = np.ascontiguousarray(tiles[:2, :, :, :max(32, size // 64 * 32)])
    err = max(round_trip_error(model, fp32, tiles[:8]), round_trip_error(model, fp32, narrow))
    print(f"fp32 onnx vs torch: max abs difference {err:.2e} over 8 tiles and 2 half-width "
          f"ones")
    if err > 1e-3:
        raise SystemExit(f"export round trip failed: max abs difference {err}")
    quantise(fp32, int8, tiles)
    print(f"int8: {int8} ({int8.stat().st_size / 1e6:.2f} MB), calibrated on {len(tiles)} "
          f"tiles; fp32: {fp32} ({fp32.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
