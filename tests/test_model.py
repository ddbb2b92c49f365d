"""The onnxruntime detector, end to end on real ONNX graphs built here with a planted output."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.detect.decode import grid
from edge.detect.model import Detector, ModelError
from edge.detect.pre import prepare, tile_starts

SIZE, STRIDES, CLASSES = (64, 64), (8, 16, 32), ("gun", "knife")


def planted_head(cells: list[tuple[int, int, int, int, float]]) -> np.ndarray:
    """Head output [1, N, 4 + C]: silent, except cells (stride, gx, gy, class, half-size in
    strides) that see a square box centred on them with a confident logit."""
    centres, strides = grid(SIZE, STRIDES)
    head = np.full((1, len(centres), 4 + len(CLASSES)), -12.0, np.float32)
    head[0, :, :4] = 0.5
    for stride, gx, gy, cls, half in cells:
        row = np.nonzero((strides == stride) & (centres[:, 0] == gx * stride + stride / 2)
                         & (centres[:, 1] == gy * stride + stride / 2))[0][0]
        head[0, row, :4] = half
        head[0, row, 4 + cls] = 6.0
    return head


def write_model(path, head: np.ndarray, metadata: dict | None = None, cells: int | None = None,
                pixels: bool = False):
    """A real ONNX graph: preds = 0 * mean(images) + head, broadcast over the batch. With
    ``pixels`` it takes uint8 images and casts them first, as exported models do."""
    n = cells or head.shape[1]
    cast = [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT)] if pixels else []
    nodes = cast + [
        helper.make_node("ReduceMean", ["x" if pixels else "images"], ["m"], keepdims=1,
                         axes=[1, 2, 3]),
        helper.make_node("Reshape", ["m", "shape"], ["m3"]),
        helper.make_node("Mul", ["m3", "zero"], ["z"]),
        helper.make_node("Add", ["z", "head"], ["preds"]),
    ]
    graph = helper.make_graph(
        nodes, "planted",
        [helper.make_tensor_value_info("images", TensorProto.UINT8 if pixels else
                                       TensorProto.FLOAT, ["B", 3, *SIZE])],
        [helper.make_tensor_value_info("preds", TensorProto.FLOAT, ["B", n, head.shape[2]])],
        [numpy_helper.from_array(head[:, :n], "head"),
         numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
         numpy_helper.from_array(np.zeros(1, np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta = {"classes": json.dumps(CLASSES), "input_size": json.dumps(SIZE),
            "strides": json.dumps(STRIDES), "mean": "[0, 0, 0]", "std": "[255, 255, 255]",
            "version": "test"}
    meta.update(metadata or {})
    for key, value in meta.items():
        if value is not None:
            model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.save(model, path)
    return path


def test_planted_box_comes_back_in_image_pixels(tmp_path):
    # stride 16 cell (1, 2): centre (24, 40) in input pixels, box +-1.5 strides = 48 px wide
    path = write_model(tmp_path / "m.onnx", planted_head([(16, 1, 2, 1, 1.5)]))
    det = Detector(path)
    assert det.info.classes == CLASSES
    image = np.full((128, 128), 255, np.uint8)  # grey scan, letterboxed at scale 0.5
    found = det.detect(image, thresholds=0.5)
    assert found.class_id.tolist() == [1]
    np.testing.assert_allclose(found.xyxy[0], [0, 32, 96, 128], atol=1e-3)
    colour16 = np.full((128, 128, 3), 65535, np.uint16)
    np.testing.assert_allclose(det.detect(colour16, 0.5).xyxy, found.xyxy)


@pytest.mark.parametrize("shape", [(100, 60, 3), (64, 64, 3), (60, 100, 3), (64, 700, 3),
                                   (64, 333)])
def test_everything_outside_the_image_is_white_padding(shape):
    image = np.random.default_rng(1).integers(0, 200, shape).astype(np.uint8)
    for _ in range(3):   # fresh buffers may hold anything: every call must pad
        batch = prepare(image, (64, 64), (0, 0, 0), (255, 255, 255), pixels=True)
        h, w = (round(n * batch.scale) for n in shape[:2])
        for tile, (x, _) in zip(batch.tensor, batch.offsets, strict=True):
            cols = min(64, w - int(x))
            assert tile[:, :h, :cols].max() < 230            # the image (resampled)
            assert (tile[:, h:] == 255).all() and (tile[:, :, cols:] == 255).all()


def test_long_parcel_is_tiled_and_boxes_land_in_each_tile(tmp_path):
    path = write_model(tmp_path / "m.onnx", planted_head([(8, 3, 3, 0, 1.0)]))
    det = Detector(path)
    parcel = np.full((64, 300), 255, np.uint8)  # height fills the input: scale 1, 6 tiles
    batch = prepare(parcel, SIZE, (0, 0, 0), (255, 255, 255))
    starts = tile_starts(300, 64)
    assert batch.tensor.shape == (len(starts), 3, 64, 64)
    found = det.detect(parcel, 0.5)
    # The same planted box in every tile: one detection per tile offset (they do not overlap
    # enough to merge), each 16 px wide around x = start + 28.
    centres = np.sort((found.xyxy[:, 0] + found.xyxy[:, 2]) / 2)
    np.testing.assert_allclose(centres, np.sort(starts + 28.0), atol=1e-3)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p, "not found"),  # no file at all
        (lambda p: p.write_bytes(b"\x00garbage") and p, "cannot load"),  # corrupt
        (lambda p: write_model(p, planted_head([]), {"strides": None}), "lacks metadata"),
        (lambda p: write_model(p, planted_head([]), {"input_size": "[60, 64]"}), "multiples"),
    ],
)
def test_unusable_models_get_clear_errors(tmp_path, setup, message):
    path = setup(tmp_path / "bad.onnx")
    with pytest.raises(ModelError, match=message):
        Detector(path)


def test_wrong_output_shape_is_reported(tmp_path):
    path = write_model(tmp_path / "m.onnx", planted_head([]), cells=50)
    with pytest.raises(ModelError, match="output shape"):
        Detector(path)


def test_bad_images_are_refused(tmp_path):
    det = Detector(write_model(tmp_path / "m.onnx", planted_head([])))
    with pytest.raises(ValueError, match="non-empty"):
        det.detect(np.zeros((0, 10), np.uint8))
    with pytest.raises(ValueError, match="8- or 16-bit"):
        det.detect(np.zeros((10, 10), np.float32))


def test_stage_benchmark_times_each_stage_on_one_input(tmp_path):
    from edge.tools.bench_detect import bench_stages

    path = write_model(tmp_path / "m.onnx", planted_head([(8, 3, 3, 0, 1.0)]))
    figures = bench_stages(path, np.full((96, 400, 3), 255, np.uint8), repeats=2)
    assert figures["tiles"] >= 2
    assert figures["pre_ms"] > 0 and figures["session_run_ms"] > 0 and figures["post_ms"] > 0
    assert figures["pre_warm_ms"] > 0 and figures["post_warm_ms"] > 0
    # The head plants one box in every tile, at the same place in each: tiles far apart.
    assert figures["candidates"] == figures["tiles"] == figures["kept"]


def test_stage_benchmark_default_parcel_is_a_simulated_one_with_a_threat():
    from edge.config import EdgeConfig
    from edge.tools.bench_detect import simulated_parcel
    from simulator.phantoms import THREAT_CLASSES

    config = EdgeConfig()
    image, source = simulated_parcel(config)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] == config.scanner.n_pixels and image.shape[1] > 100
    assert image.min() < 128   # something dense in it, not an empty belt
    assert any(name in source for name in THREAT_CLASSES)


def test_model_benchmark_times_every_model_and_batch_in_one_run(tmp_path):
    from edge.tools.bench_detect import bench_models

    paths = [write_model(tmp_path / "f.onnx", planted_head([])),
             write_model(tmp_path / "p.onnx", planted_head([]), pixels=True)]
    figures = bench_models(paths, batches=(1, 2), repeats=4, block=3)
    assert figures["repeats"] == 4
    assert [r["model"] for r in figures["rows"]] == [str(p) for p in paths]
    for row in figures["rows"]:
        assert row["batch1_ms"] > 0 and row["batch2_ms"] > 0
    with pytest.raises(ValueError, match="block"):
        bench_models(paths, block=1)


def test_pixel_input_model_gets_the_same_boxes_from_raw_pixels(tmp_path):
    head = planted_head([(16, 1, 2, 1, 1.5)])
    floats = Detector(write_model(tmp_path / "f.onnx", head))
    pixels = Detector(write_model(tmp_path / "p.onnx", head, pixels=True))
    assert pixels.info.pixels and not floats.info.pixels
    image = np.random.default_rng(0).integers(0, 256, (128, 200, 3)).astype(np.uint8)
    a, b = floats.detect(image, 0.5), pixels.detect(image, 0.5)
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    assert len(a) >= 1 and a.class_id.tolist() == b.class_id.tolist()


def test_pixel_batch_is_the_normalised_batch_before_normalisation():
    image = np.random.default_rng(1).integers(0, 256, (90, 400, 3)).astype(np.uint8)
    mean, std = (10.0, 20.0, 30.0), (50.0, 60.0, 70.0)
    for order in ("bgr", "rgb"):
        f = prepare(image, SIZE, mean, std, order)
        p = prepare(image, SIZE, mean, std, order, pixels=True)
        assert p.tensor.dtype == np.uint8 and p.tensor.shape == f.tensor.shape
        np.testing.assert_array_equal(p.offsets, f.offsets)
        back = (f.tensor * np.array(std, np.float32)[:, None, None]
                + np.array(mean, np.float32)[:, None, None])
        np.testing.assert_allclose(back, p.tensor, atol=1e-3)


def test_model_with_an_unusable_input_type_is_refused(tmp_path):
    path = write_model(tmp_path / "m.onnx", planted_head([]))
    proto = onnx.load(str(path))
    proto.graph.input[0].type.tensor_type.elem_type = TensorProto.INT32
    proto.graph.node.insert(0, helper.make_node("Cast", ["images"], ["images_f"],
                                                to=TensorProto.FLOAT))
    proto.graph.node[1].input[0] = "images_f"
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match="float32 or uint8"):
        Detector(path)


def test_parcel_benchmark_counts_the_tiles_of_each_parcel(tmp_path):
    """Whole parcels: a parcel three times as long as it is high takes three or more tiles
    of a square input (they overlap), and every model is timed on every parcel."""
    from edge.detect.pre import prepare
    from edge.tools.bench_detect import bench_parcels

    paths = [write_model(tmp_path / "a.onnx", planted_head([])),
             write_model(tmp_path / "b.onnx", planted_head([]), pixels=True)]
    side = Detector(paths[0]).info.input_size[0]
    images = [np.full((side, side, 3), 200, np.uint8), np.full((side, 3 * side, 3), 90, np.uint8),
              np.full((side, 3 * side, 3), 120, np.uint8)]
    figures = bench_parcels(paths, images, repeats=2)
    assert figures["parcels"] == 3 and figures["median_image"] == [side, 3 * side]
    assert [r["model"] for r in figures["rows"]] == [str(p) for p in paths]
    info = Detector(paths[0]).info
    long = len(prepare(images[1], info.input_size, info.mean, info.std, info.channel_order).offsets)
    assert long >= 3
    for row in figures["rows"]:
        assert row["median_tiles"] == long
        assert 0 < row["median_ms"] <= row["p90_ms"] <= row["max_ms"]


def write_conv_model(path, free: bool):
    """A real convolutional detector whose head follows the tile it is fed: per stride, the
    average darkness of each cell's pixels is class 0's logit (12 * darkness - 6) and every
    box reaches one stride from its cell's centre. ``free``: the graph declares its input
    height and width free, as exported models do."""
    nodes = [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT)]
    parts = []
    for s in STRIDES:
        nodes += [helper.make_node("AveragePool", ["x"], [f"p{s}"], kernel_shape=[s, s],
                                   strides=[s, s]),
                  helper.make_node("Conv", [f"p{s}", "w", "b"], [f"c{s}"]),
                  helper.make_node("Reshape", [f"c{s}", "flat"], [f"r{s}"])]
        parts.append(f"r{s}")
    nodes += [helper.make_node("Concat", parts, ["cat"], axis=2),
              helper.make_node("Transpose", ["cat"], ["preds"], perm=[0, 2, 1])]
    weight = np.zeros((4 + len(CLASSES), 3, 1, 1), np.float32)
    weight[4, :, 0, 0] = -12 / (3 * 255)
    bias = np.array([1, 1, 1, 1, 6, -12], np.float32)
    side = ["height", "width"] if free else list(SIZE)
    graph = helper.make_graph(
        nodes, "darkness",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["B", 3, *side])],
        [helper.make_tensor_value_info("preds", TensorProto.FLOAT, ["B", "N", 6])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b"),
         numpy_helper.from_array(np.array([0, 6, -1], np.int64), "flat")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in {"classes": json.dumps(CLASSES), "input_size": json.dumps(SIZE),
                       "strides": json.dumps(STRIDES), "mean": "[0, 0, 0]",
                       "std": "[255, 255, 255]", "version": "test"}.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.save(model, path)
    return path


def test_a_free_size_graph_gets_a_short_parcel_in_a_tile_cut_down_to_it(tmp_path):
    """A parcel shorter along the belt than the tunnel is high fits in one tile; a graph
    whose input size is free gets that tile cut to the parcel (rounded up to the largest
    stride) and finds the same objects as the full, white-padded square."""
    free = Detector(write_conv_model(tmp_path / "free.onnx", free=True))
    fixed = Detector(write_conv_model(tmp_path / "fixed.onnx", free=False))
    assert (free.info.fit_to, fixed.info.fit_to) == (32, 0)
    parcel = np.full((128, 40, 3), 255, np.uint8)   # scale 0.5: 64 x 20 in the input
    parcel[48:64, 16:32] = 0                         # a dark square: 8 x 8 input pixels
    info = free.info
    batch = prepare(parcel, info.input_size, info.mean, info.std, pixels=True, fit_to=32)
    assert batch.tile_size == (64, 32) and batch.tensor.shape == (1, 3, 64, 32)
    assert (batch.tensor[0, :, :, 20:] == 255).all()        # the rest of the tile is air
    assert prepare(parcel, info.input_size, info.mean, info.std, pixels=True).tile_size == SIZE
    got, want = free.detect(parcel, 0.3), fixed.detect(parcel, 0.3)
    assert len(want) > 0
    order = np.lexsort(want.xyxy.T), np.lexsort(got.xyxy.T)
    np.testing.assert_allclose(got.xyxy[order[1]], want.xyxy[order[0]], atol=1e-4)
    np.testing.assert_allclose(got.score[order[1]], want.score[order[0]], atol=1e-5)
    # Boxes come back in the parcel's pixels: the stride-8 cell on the square, centre
    # (12, 28) in the input, reaches 8 input pixels (16 of the parcel's) each way.
    assert any(np.allclose(box, [8, 40, 40, 72], atol=1e-3) for box in got.xyxy)


def test_long_parcels_keep_full_tiles_when_the_size_is_free():
    """Tiles of a long parcel share one size (the model's input): only a single tile is cut."""
    parcel = np.full((64, 300), 255, np.uint8)
    batch = prepare(parcel, SIZE, (0, 0, 0), (255, 255, 255), pixels=True, fit_to=32)
    assert batch.tensor.shape == (len(tile_starts(300, 64)), 3, 64, 64)
    tall = np.full((300, 64), 255, np.uint8)   # letterboxed: 64 x 14 in the input
    assert prepare(tall, SIZE, (0, 0, 0), (255, 255, 255), pixels=True,
                   fit_to=32).tile_size == (64, 32)


def test_tiles_of_a_batch_run_alone_and_come_back_in_order(tmp_path):
    det = Detector(write_conv_model(tmp_path / "free.onnx", free=True))
    tiles = np.random.default_rng(0).integers(0, 256, (3, 3, 64, 64)).astype(np.uint8)
    together = det.raw(tiles)
    for k, tile in enumerate(tiles):
        np.testing.assert_array_equal(together[k], det.raw(tile[None])[0])
