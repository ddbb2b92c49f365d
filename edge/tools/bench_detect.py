"""NMS benchmark: our vectorised batched NMS against OpenCV's, timed in one run on the same
candidate sets. Prints figures; asserts nothing. (torchvision joins the race in
``scripts/bench_nms_torchvision.py``: the runtime never imports torch.)"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from edge.detect.nms import batched_nms

SIZES = (100, 1_000, 5_000, 20_000)
CLASSES = 8
IMAGE = 640


def random_set(n: int, rng: np.random.Generator):
    """Boxes anywhere in a 640 px image, 10-120 px a side, uniform scores, 8 classes."""
    xy = rng.uniform(0, IMAGE - 120, (n, 2))
    wh = rng.uniform(10, 120, (n, 2))
    return (np.hstack([xy, xy + wh]).astype(np.float32), rng.random(n).astype(np.float32),
            rng.integers(0, CLASSES, n))


def realistic_set(n: int, rng: np.random.Generator):
    """What a detector head emits before NMS: dense clusters of jittered boxes around a few
    dozen objects (score falling with the jitter), plus low-score clutter."""
    objects = max(n // 150, 2)
    centre = rng.uniform(60, IMAGE - 60, (objects, 2))
    size = rng.uniform(20, 160, (objects, 2))
    cls = rng.integers(0, CLASSES, objects)
    owner = rng.integers(0, objects, n)
    jitter = rng.normal(0, 0.12, (n, 4))
    c = centre[owner] + jitter[:, :2] * size[owner]
    s = size[owner] * np.exp(jitter[:, 2:])
    xyxy = np.hstack([c - s / 2, c + s / 2]).astype(np.float32)
    score = np.clip(0.95 - np.abs(jitter).sum(1) + rng.normal(0, 0.05, n), 0.01, 1)
    clutter = rng.random(n) < 0.2
    score[clutter] *= 0.3
    return xyxy, score.astype(np.float32), np.where(clutter, rng.integers(0, CLASSES, n),
                                                    cls[owner])


def _opencv(xyxy, scores, classes, iou):
    xywh = np.hstack([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]])
    kept = cv2.dnn.NMSBoxesBatched(xywh, scores, classes.astype(np.int32), 0.0, iou)
    return np.asarray(kept, np.int64).ravel()


def _median_ms(fn: Callable, args, repeats: int) -> float:
    fn(*args)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def bench_nms(iou: float = 0.5, seed: int = 0, repeats: int = 9,
              sizes: tuple[int, ...] = SIZES, extra_peers: dict | None = None) -> dict:
    """Median ms per call of each peer on each set. The peers take turns in blocks of calls
    (three rounds of a third of ``repeats`` each; on up to 5,000 boxes, each block after an
    untimed call): a burst of load on a shared machine falls on all of them alike rather than
    on whichever was being timed, and each is timed with its own code and data in the caches,
    not the last peer's."""
    peers = {"edge": batched_nms, "opencv": _opencv, **(extra_peers or {})}
    rows = []
    for kind, make in (("random", random_set), ("realistic", realistic_set)):
        for n in sizes:
            xyxy, scores, classes = make(n, np.random.default_rng([seed, n]))
            args = (xyxy, scores, classes, iou)
            row = {"set": kind, "boxes": n}
            ours = set(batched_nms(*args).tolist())
            same = {name: set(np.asarray(fn(*args)).tolist()) == ours
                    for name, fn in peers.items() if name != "edge"}
            times: dict[str, list[float]] = {name: [] for name in peers}
            small = n <= 5_000   # calls of milliseconds: warm up each block, time several
            rounds, block = (3, max(1, repeats // 3)) if small else (2, 1)
            for _ in range(rounds):
                for name, fn in peers.items():
                    if small:
                        fn(*args)
                    for _ in range(block):
                        start = time.perf_counter()
                        fn(*args)
                        times[name].append(time.perf_counter() - start)
            for name in peers:
                row[f"{name}_ms"] = round(float(np.median(times[name])) * 1e3, 3)
                if name != "edge":
                    row[f"{name}_same_kept"] = same[name]
            for name in same:
                row[f"speedup_vs_{name}"] = round(row[f"{name}_ms"] / row["edge_ms"], 2)
            rows.append(row)
    return {"iou_threshold": iou, "peers": list(peers), "rows": rows}


def simulated_parcel(config, threats: int = 1) -> tuple[np.ndarray, str]:
    """The colour rendering of the first simulated parcel (the config's scanner and seed) that
    carries at least ``threats`` threats, as the live loop would hand it to the detector: a
    parcel with content, so that post-processing has candidates to work through."""
    from edge.capture import capture_flatfield
    from edge.imaging.attenuation import ratio_boundaries
    from edge.imaging.correct import correct
    from edge.imaging.render import render_colour
    from simulator.dataset import MARGIN_MM
    from simulator.scanner import SimScanner

    scfg = config.scanner.model_copy(update={"realtime": False})
    scanner = SimScanner(scfg)
    flat = capture_flatfield(scanner)
    for placed in scanner.parcels():
        if len(placed.scene.labels) >= threats:
            break
    first, lines = scanner.span_of(placed, MARGIN_MM)
    block = scanner.scan(first, lines)
    hi, lo = (np.ascontiguousarray(a.T) for a in correct(block.hi, block.lo, flat))
    image = render_colour(hi, lo, ratio_boundaries(scfg.low_kev, scfg.high_kev))
    return image, f"simulated parcel {placed.id} ({', '.join(placed.scene.labels)})"


def simulated_parcels(config, count: int) -> list[np.ndarray]:
    """The colour renderings of the config's first ``count`` simulated parcels, clear and
    threat alike, as the live loop hands them to the detector."""
    from edge.capture import capture_flatfield
    from edge.imaging.attenuation import ratio_boundaries
    from edge.imaging.correct import correct
    from edge.imaging.render import render_colour
    from simulator.dataset import MARGIN_MM
    from simulator.scanner import SimScanner

    scfg = config.scanner.model_copy(update={"realtime": False})
    scanner = SimScanner(scfg)
    flat = capture_flatfield(scanner)
    boundaries = ratio_boundaries(scfg.low_kev, scfg.high_kev)
    images = []
    for placed, _ in zip(scanner.parcels(), range(count), strict=False):
        first, lines = scanner.span_of(placed, MARGIN_MM)
        block = scanner.scan(first, lines)
        hi, lo = (np.ascontiguousarray(a.T) for a in correct(block.hi, block.lo, flat))
        images.append(render_colour(hi, lo, boundaries))
    return images


def _detect(det, verifier, image: np.ndarray, verify_at: float) -> int:
    """One parcel through the model (and its second look): the boxes looked at twice."""
    if verifier is None:
        det.detect(image)
        return 0
    found = det.detect(image, verify_at)
    verifier.rescore(image, found)
    return len(found)


def bench_parcels(paths, images: Sequence[np.ndarray], repeats: int = 5,
                  threads: int = 2, seconds: Sequence | None = None) -> dict:
    """Whole-parcel detection (pre-processing, every tile through the model, post-processing)
    of each model on the same parcel images, in one run. Per parcel, each model runs
    ``repeats`` times in a row after one uncounted call, then the next model; the parcel's
    time is the median of its repeats, and a model's figures are taken over parcels.
    ``seconds`` holds, per model, None or its second look as ``(verifier, verify_at)``
    (edge.detect.verify): such a model is timed a second time with that verifier rescoring
    the boxes at or above ``verify_at``, as the live loop runs the pair."""
    from edge.detect.model import Detector
    from edge.detect.pre import prepare

    seconds = list(seconds) if seconds is not None else [None] * len(paths)
    if len(seconds) != len(paths):
        raise ValueError(f"{len(paths)} models but {len(seconds)} second looks")
    models = [Detector(p, threads=threads) for p in paths]
    dets = [(det, None, 0.0) for det in models] + [
        (det, *pair) for det, pair in zip(models, seconds, strict=True) if pair is not None]
    per_parcel = np.zeros((len(dets), len(images)))
    tiles = np.zeros((len(dets), len(images)), np.int64)
    widths = np.zeros((len(dets), len(images)), np.int64)
    looked_at = np.zeros((len(dets), len(images)), np.int64)
    for j, image in enumerate(images):
        for i, (det, second, verify_at) in enumerate(dets):
            looked_at[i, j] = _detect(det, second, image, verify_at)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                _detect(det, second, image, verify_at)
                times.append(time.perf_counter() - start)
            per_parcel[i, j] = np.median(times) * 1e3
            info = det.info
            batch = prepare(image, info.input_size, info.mean, info.std, info.channel_order,
                            pixels=info.pixels, fit_to=info.fit_to)
            tiles[i, j], widths[i, j] = len(batch.offsets), batch.tile_size[1]
    rows = []
    for i, (det, second, verify_at) in enumerate(dets):
        extra = {} if second is None else {
            "verifier": str(second.path), "verify_at": round(verify_at, 4),
            "median_boxes_verified": float(np.median(looked_at[i]))}
        rows.append({"model": str(det.path), **extra, "version": det.info.version,
                     "input": list(det.info.input_size),
                     "median_ms": round(float(np.median(per_parcel[i])), 1),
                     "p90_ms": round(float(np.percentile(per_parcel[i], 90)), 1),
                     "max_ms": round(float(per_parcel[i].max()), 1),
                     "median_tiles": float(np.median(tiles[i])),
                     "median_tile_width": float(np.median(widths[i]))})
    return {"threads": threads, "parcels": len(images), "repeats": repeats,
            "median_image": [int(np.median([im.shape[k] for im in images])) for k in (0, 1)],
            "rows": rows}


def bench_stages(model_path, image: np.ndarray, repeats: int = 200) -> dict:
    """Pre-processing, the bare session run and post-processing of one parcel image, each
    timed on the same input in one run (median ms; the first round is warm-up), as the live
    loop calls them: in turn. Then pre and post alone, call after call (``*_warm_ms``)."""
    from edge.detect.decode import decode_select
    from edge.detect.model import Detector, postprocess
    from edge.detect.pre import prepare

    det = Detector(model_path)
    info = det.info
    conf = 0.25   # the default score threshold: what the live loop keeps

    def pre():
        return prepare(image, info.input_size, info.mean, info.std, info.channel_order,
                       pixels=info.pixels, fit_to=info.fit_to)

    batch = pre()
    raw = det.raw(batch.tensor)

    def post():
        return postprocess(raw, batch, info, conf, 0.5)

    stages = {"pre": pre, "run": lambda: det.raw(batch.tensor), "post": post}
    times: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(repeats + 1):   # rounds interleaved: load drift hits all three alike
        for name, fn in stages.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    pre_ms, run_ms, post_ms = (float(np.median(times[k][1:])) * 1e3 for k in stages)
    # The same two stages called over and over with no run between: what they cost with warm
    # caches. The gap to the figures above is what running the model (or anything else for a
    # few milliseconds) leaves cold, not work the stages do.
    warm = {name: _median_ms(stages[name], (), repeats) for name in ("pre", "post")}
    candidates = sum(len(decode_select(tile, batch.tile_size, info.strides, np.float32(conf)))
                     for tile in raw)
    return {"model": str(model_path), "image": list(image.shape), "tiles": len(batch.offsets),
            "candidates": candidates, "kept": len(post()),
            "pre_ms": round(pre_ms, 3), "session_run_ms": round(run_ms, 3),
            "post_ms": round(post_ms, 3),
            "pre_post_share_of_run": round((pre_ms + post_ms) / run_ms, 4),
            "pre_warm_ms": round(warm["pre"], 3), "post_warm_ms": round(warm["post"], 3)}


def bench_models(paths, batches=(1, 2), repeats: int = 20, threads: int = 2,
                 block: int = 20) -> dict:
    """Bare session-run latency of several models at their deployed input size, measured in
    one run (median ms). Each model runs ``block`` times in a row, then the next: a model
    runs alone on an edge box, and switching after every call would time each one with the
    other's weights in the caches (twice as slow here; blocks of 5 were still 40 % slow,
    blocks of 20 come within 15 % of a model timed alone). Rounds of blocks repeat, so
    background load falls on all of them alike; the first call of each block is not
    counted."""
    from edge.detect.model import Detector

    if block < 2:
        raise ValueError(f"block must be at least 2 (its first call is not counted), got {block}")
    dets = [Detector(p, threads=threads) for p in paths]
    times: dict[tuple[int, int], list[float]] = {(i, b): [] for i in range(len(dets))
                                                 for b in batches}
    def sample(det, b: int) -> np.ndarray:   # the same pixels for every model of a size
        x = np.random.default_rng(0).integers(0, 256, (b, 3, *det.info.input_size))
        return (x if det.info.pixels else x / 255).astype(det.input_dtype)

    inputs = {(i, b): sample(d, b) for i, d in enumerate(dets) for b in batches}
    rounds = max(1, -(-repeats // (block - 1)))
    for _ in range(rounds):
        for (i, b), samples in times.items():
            for k in range(block):
                start = time.perf_counter()
                dets[i].raw(inputs[i, b])
                if k:
                    samples.append((time.perf_counter() - start) * 1000)
    rows = []
    for i, d in enumerate(dets):
        row = {"model": str(paths[i]), "version": d.info.version,
               "input": list(d.info.input_size),
               "size_mb": round(os.path.getsize(paths[i]) / 1e6, 2)}
        for b in batches:
            row[f"batch{b}_ms"] = round(float(np.median(times[i, b])), 2)
        rows.append(row)
    return {"threads": threads, "repeats": rounds * (block - 1), "rows": rows}
