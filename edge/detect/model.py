"""The detector runtime: an onnxruntime session built from the model's own metadata.

A model file is self-describing (``models/README.md``): class names, input size, strides and
normalisation travel in its ``metadata_props``; a graph whose input height and width are free
takes smaller tiles too. ``Detector.detect`` runs pre-processing, a session run per tile, and
the NumPy post-processing core.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.detect.decode import decode_tiles, grid, merge_tiles
from edge.detect.pre import Batch, prepare
from edge.types import Detections

REQUIRED_KEYS = ("classes", "input_size", "strides", "mean", "std")
INPUT_TYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8}


class ModelError(RuntimeError):
    """A model that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class ModelInfo:
    classes: tuple[str, ...]
    input_size: tuple[int, int]
    strides: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: str = "bgr"
    version: str = "unknown"
    pixels: bool = False   # input is uint8 pixels; the graph normalises them itself
    fit_to: int = 0        # the graph takes any tile whose sides are multiples of this

    @classmethod
    def from_metadata(cls, meta: dict[str, str], path: Path | str) -> ModelInfo:
        missing = [k for k in REQUIRED_KEYS if k not in meta]
        if missing:
            raise ModelError(f"model {path} lacks metadata {', '.join(missing)} "
                             f"(see models/README.md)")
        try:
            values = {k: json.loads(meta[k]) for k in REQUIRED_KEYS}
        except json.JSONDecodeError as exc:
            raise ModelError(f"model {path} has unreadable metadata: {exc}") from None
        info = cls(tuple(values["classes"]), tuple(values["input_size"]),
                   tuple(values["strides"]), tuple(values["mean"]), tuple(values["std"]),
                   meta.get("channel_order", "bgr"), meta.get("version", "unknown"))
        if len(info.input_size) != 2 or any(s % max(info.strides) for s in info.input_size):
            raise ModelError(f"model {path}: input_size {info.input_size} must be two multiples "
                             f"of the largest stride {max(info.strides)}")
        return info

    def cells(self, tile: tuple[int, int] | None = None) -> int:
        """Head rows for one tile (default: the full input size)."""
        return len(grid(tuple(tile or self.input_size), self.strides)[0])


def choose_providers(wanted: Sequence[str]) -> list[str]:
    """The wanted execution providers that this onnxruntime offers, CPU always last."""
    available = ort.get_available_providers()
    chosen = [p for p in wanted if p in available and p != "CPUExecutionProvider"]
    return [*chosen, "CPUExecutionProvider"]


def open_session(path: Path, what: str, threads: int,
                 providers: Sequence[str] = ("CPUExecutionProvider",),
                 spin: bool = True) -> ort.InferenceSession:
    """An onnxruntime session on ``path`` with ``threads`` inside one run; a missing or
    unreadable file raises ModelError naming ``what`` it was to be. ``spin`` False: its
    threads sleep as soon as a run ends instead of spinning for the next one, which would
    keep the cores from another session run right after it."""
    if not path.is_file():
        raise ModelError(f"{what} file not found: {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=choose_providers(providers))
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises several private types
        raise ModelError(f"cannot load {what} {path}: {exc}") from None


class Detector:
    """One loaded model, warmed up. ``detect(image)`` -> Detections in the image's pixels."""

    def __init__(self, path: Path | str, providers: Sequence[str] = ("CPUExecutionProvider",),
                 threads: int = 2, warmup: bool = True):
        self.path = Path(path)
        self.session = open_session(self.path, "model", threads, providers)
        info = ModelInfo.from_metadata(self.session.get_modelmeta().custom_metadata_map,
                                       self.path)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        if model_input.type not in INPUT_TYPES:
            raise ModelError(f"model {self.path}: input must be float32 or uint8, got "
                             f"{model_input.type}")
        shape = model_input.shape
        if len(shape) != 4 or shape[1] != 3:
            raise ModelError(f"model {self.path}: input must be [B, 3, H, W], got {shape}")
        free = not any(isinstance(side, int) for side in shape[2:])
        self.info = replace(info, pixels=model_input.type == "tensor(uint8)",
                            fit_to=max(info.strides) if free else 0)
        self.input_dtype = INPUT_TYPES[model_input.type]
        if warmup:
            self.raw(np.zeros((1, 3, *self.info.input_size), self.input_dtype))

    def raw(self, tensor: np.ndarray) -> np.ndarray:
        """[B, 3, H, W] -> head output [B, N, 4 + C], shape checked. Tiles run one at a
        time: on two cores a batch of two takes twice as long as one tile anyway, and
        onnxruntime's memory arena (which spares the allocator hundreds of large buffers per
        run) then holds one tile's worth, not a whole batch's."""
        if len(tensor) == 1:
            out = self.session.run(None, {self.input_name: tensor})[0]
        else:
            out = np.concatenate([self.session.run(None, {self.input_name: tile[None]})[0]
                                  for tile in tensor])
        expected = (tensor.shape[0], self.info.cells(tensor.shape[2:]),
                    4 + len(self.info.classes))
        if out.shape != expected:
            raise ModelError(f"model {self.path}: output shape {out.shape}, expected {expected} "
                             f"from its metadata")
        return out

    def detect(self, image: np.ndarray, thresholds: float | Sequence[float] = 0.25,
               iou_threshold: float = 0.5, vote: bool = False) -> Detections:
        return detect_with(self.raw, self.info, image, thresholds, iou_threshold, vote)


def detect_with(raw: Callable[[np.ndarray], np.ndarray], info: ModelInfo, image: np.ndarray,
                thresholds: float | Sequence[float] = 0.25, iou_threshold: float = 0.5,
                vote: bool = False) -> Detections:
    """Pre-process, run ``raw`` (any forward pass honouring the head contract: an onnxruntime
    session here, the torch network in training) and post-process, in ``image``'s pixels."""
    batch = prepare(image, info.input_size, info.mean, info.std, info.channel_order,
                    pixels=info.pixels, fit_to=info.fit_to)
    return postprocess(raw(batch.tensor), batch, info, thresholds, iou_threshold, vote)


def postprocess(out: np.ndarray, batch: Batch, info: ModelInfo,
                thresholds: float | Sequence[float], iou_threshold: float,
                vote: bool = False) -> Detections:
    """Head output of every tile of ``batch`` -> one set of detections in image pixels."""
    found = decode_tiles(out, batch.offsets, batch.scale, batch.image_shape, batch.tile_size,
                         info.strides, np.asarray(thresholds, np.float32))
    return merge_tiles([found], iou_threshold, vote)
