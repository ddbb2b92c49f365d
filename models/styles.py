"""Accuracy on image styles and scanner set-ups that training never saw.

The simulated test parcels are scored as simulated, then changed in ways no training
augmentation makes (JPEG compression, a vendor's edge sharpening, a palette turned further
than any hue shift, contrast curves beyond the gamma range, heavier noise); and parcels are
simulated at pixel pitches outside the training set-ups. The drop from "as simulated" is our
in-house estimate of what a real scanner's own choices cost: held-out styles stand in for the
scanners we have no scans from.

    python -m models.styles models/parcelnet/parcelnet.int8.onnx [--every 2] [--json]
    python -m models.styles models/lite0/lite0.int8.onnx --verifier models/lite0/verifier.int8.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.tools.metrics import json_ready
from models.data import is_grey

Style = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# Pixel pitch (mm) and detector pixels across the tunnel, the same 768 mm tunnel: a seen
# set-up as the control, then coarser and finer than any of models.data.SETUPS (0.8-1.5 mm).
# All three are simulated from one seed: the same parcels, only the scanner differs.
CONTROL = "pitch 1.0 mm (768 px), seen"
SETUPS = {CONTROL: (1.0, 768), "pitch 2.0 mm (384 px)": (2.0, 384),
          "pitch 0.5 mm (1536 px)": (0.5, 1536)}


def jpeg(quality: int) -> Style:
    def style(img, rng):
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError(f"cannot encode an image of shape {img.shape} as JPEG")
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return style


def sharpened(img, rng):
    """Unsharp masking, as scanner consoles enhance edges: 1.5 x (image - blur) added."""
    blur = cv2.GaussianBlur(img, (0, 0), 2.0)
    return cv2.addWeighted(img, 2.5, blur, -1.5, 0)


def hue_turned(degrees: int) -> Style:
    def style(img, rng):
        if is_grey(img):   # no palette to turn
            return img
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + degrees // 2) % 180   # OpenCV: 0-179
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    return style


def gamma(g: float) -> Style:
    table = (255 * (np.arange(256) / 255) ** g).round().astype(np.uint8)
    return lambda img, rng: cv2.LUT(img, table)


def noisier(sigma: float) -> Style:
    def style(img, rng):
        noise = rng.normal(0, sigma, img.shape[:2])[..., None]
        return (img.astype(np.float32) + noise).clip(0, 255).astype(np.uint8)
    return style


# The shipped recipe augments gamma 0.6-1.6, hue shifts up to 50 degrees, blur and noise of sigma
# up to 8; `--augment wide` (models.data.photometric) reaches further but stops short of every row.
STYLES: dict[str, Style | None] = {
    "as simulated": None,
    "JPEG quality 30": jpeg(30),
    "sharpened": sharpened,
    "palette turned 90 degrees": hue_turned(90),
    "gamma 0.4 (bright)": gamma(0.4),
    "gamma 2.5 (dark)": gamma(2.5),
    "noise sigma 16": noisier(16.0),
}


def setup_sets(root: Path, parcels: int, seed: int = 3001) -> dict[str, Path]:
    """Simulate (once) the same ``parcels`` parcels with each scanner set-up under ``root``."""
    from models.data import _shard

    folders = {}
    for name, setup in SETUPS.items():
        folder = root / f"pitch-{setup[0]:.1f}-n{parcels}-s{seed}"
        if not (folder / "annotations.json").is_file():
            _shard((str(folder), parcels, seed, setup, 0.7))
        folders[name] = folder
    return folders


def style_table(models: Sequence[tuple[str, Callable, object, object]], records: Sequence,
                setups: dict[str, Sequence] | None = None, progress: bool = False) -> list[dict]:
    """One row per style, then per scanner set-up: images, the row it is compared with, and
    mAP50 and mAP50:95 of each model (``(name, raw, info, verifier)``, the verifier None or
    a second look that rescores its candidates) on it. Styles compare with the test images
    as simulated, set-ups with the seen set-up (the same parcels)."""
    from models.evaluate import evaluate

    first = next(iter(STYLES))
    cases = [(name, records, style, first) for name, style in STYLES.items()]
    cases += [(name, recs, None, CONTROL) for name, recs in (setups or {}).items()]
    rows = []
    for name, recs, style, base in cases:
        row = {"style": name, "images": len(recs), "against": base, "models": {}}
        for model, raw, info, verifier in models:
            scores = evaluate(raw, info, recs, progress, transform=style, verifier=verifier)
            row["models"][model] = {"mAP50": scores["mAP50"], "mAP50_95": scores["mAP50_95"]}
        rows.append(row)
    return rows


def report(rows: list[dict]) -> str:
    """mAP50 per style and model, with its change from the row it is compared with."""
    by_name = {row["style"]: row for row in rows}
    models = list(rows[0]["models"])
    from edge.tools.evaluate import column_titles
    titles, width = column_titles(models, 26)
    lines = ["mAP50, and its change from the images as simulated (styles) or from the seen "
             "set-up (the same parcels at other pitches)",
             f"{'':34s}{'images':>8s}" + "".join(f"{t:>{width}s}" for t in titles)]
    for row in rows:
        base = by_name[row["against"]]["models"]
        cells = "".join(f"{row['models'][m]['mAP50']:>{width - 10}.3f} "
                        f"({row['models'][m]['mAP50'] - base[m]['mAP50']:+.3f})"
                        for m in models)
        lines.append(f"{row['style']:34s}{row['images']:>8d}{cells}")
    return "\n".join(lines)


def with_second_look(models: list[tuple], path: Path) -> list[tuple]:
    """``models`` and, after them, the first of them with the second look at ``path``: a
    second look is trained on one detector's candidates, so it rescores that one alone."""
    from edge.detect.verify import Verifier
    verifier = Verifier(path)
    name, raw, info, _ = models[0]
    if tuple(info.classes) != verifier.classes:
        raise SystemExit(f"{path} was trained for classes {verifier.classes}, {name} has "
                         f"{tuple(info.classes)}: name its own detector first")
    return [*models, (f"{name} + {path}", raw, info, verifier)]


def main(argv: Sequence[str] | None = None) -> int:
    from models.data import coco_records
    from models.evaluate import onnx_raw

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="ONNX files")
    parser.add_argument("--data", type=Path, nargs="+",
                        default=sorted(Path("data/sim/test").glob("shard-*")),
                        help="simulated test shards (default: data/sim/test/shard-*)")
    parser.add_argument("--every", type=int, default=2, help="score every n-th image only")
    parser.add_argument("--setups", type=Path, default=Path("data/sim/setups"),
                        help="where the parcels of each scanner set-up are simulated once")
    parser.add_argument("--parcels", type=int, default=100,
                        help="parcels per scanner set-up (0: no set-up rows)")
    parser.add_argument("--verifier", type=Path, default=None, metavar="FILE",
                        help="the first model's second look (edge.detect.verify): that model "
                             "is also scored with it rescoring its candidates")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.data:
        parser.error("no test shards: pass --data (make train simulates data/sim/test)")
    records = [r for folder in args.data for r in coco_records(folder)][::args.every]
    setups = {name: coco_records(folder) for name, folder in
              setup_sets(args.setups, args.parcels).items()} if args.parcels > 0 else {}
    models = [(str(p), *onnx_raw(p), None) for p in args.models]
    if args.verifier is not None:
        models = with_second_look(models, args.verifier)
    rows = style_table(models, records, setups, progress=not args.json)
    print(json.dumps(json_ready(rows)) if args.json else report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
