"""``models.graph``: an exported detector made to take any tile size (its computed "same"
padding held as constants), and the float graph of a quantised file for timing."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models.graph import NARROW, computed_pads, dequantised, folded_pads, free_input_size, narrowed

SHIPPED = "models/lite0/lite0.int8.onnx"
SHIPPED_VERIFIER = "models/lite0/verifier.int8.onnx"


def run(proto: onnx.ModelProto, x: np.ndarray, exact: bool = False) -> np.ndarray:
    """``exact``: onnxruntime's optimisations off, so a QDQ graph runs as dequantise then
    float (the INT8 arithmetic itself, without the integer kernels of this CPU)."""
    options = ort.SessionOptions()
    if exact:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(proto.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def dynamic_same_net() -> torch.nn.Module:
    """Convolutions with the backbone package's run-time "same" padding (what Lite0 files
    exported before the constant padding hold)."""
    from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding
    torch.manual_seed(0)
    return torch.nn.Sequential(Conv2dDynamicSamePadding(3, 8, 3, stride=2),
                               torch.nn.ReLU6(),
                               Conv2dDynamicSamePadding(8, 4, 5, stride=1, groups=4)).eval()


def test_computed_padding_becomes_constant_and_the_input_size_free(tmp_path):
    net = dynamic_same_net()
    path = tmp_path / "same.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 64, 64),), str(path), input_names=["images"],
                      output_names=["preds"], opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    assert computed_pads(proto)
    fixed = free_input_size(proto)
    assert computed_pads(fixed) == []
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[2:]] == ["height", "width"]
    x = np.random.default_rng(0).random((1, 3, 64, 64), np.float32)
    np.testing.assert_array_equal(run(fixed, x), run(proto, x))   # same at the export's size
    wide = np.random.default_rng(1).random((1, 3, 64, 160), np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(wide)).numpy()
    got = run(fixed, wide)
    assert got.shape == want.shape == (1, 4, 32, 80)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # With its input size freed but its padding still computed, the graph pads another
    # size back out to the export's: the reason for the constants.
    loose = onnx.ModelProto()
    loose.CopyFrom(proto)
    for dim, name in zip(loose.graph.input[0].type.tensor_type.shape.dim[2:], "hw",
                         strict=True):
        dim.dim_param = name
    assert run(loose, wide).shape != want.shape


def test_the_shipped_model_takes_any_tile_with_constant_padding():
    proto = onnx.load(SHIPPED)
    assert computed_pads(proto) == []
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert not any(d.HasField("dim_value") for d in dims[2:])


def test_the_float_graph_of_a_quantised_file_computes_the_same_network():
    proto = onnx.load(SHIPPED)
    floats = dequantised(proto)
    ops = {n.op_type for n in floats.graph.node}
    assert not ops & {"QuantizeLinear", "DequantizeLinear"}
    x = np.random.default_rng(0).integers(0, 256, (1, 3, 448, 128)).astype(np.uint8)
    got, want = run(floats, x), run(proto, x)
    assert got.shape == want.shape == (1, 56 * 16 + 28 * 8 + 14 * 4, 12)
    # Only the 8-bit rounding of activations differs.
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.999
    np.testing.assert_allclose(got, want, atol=1.0)


def quantised(fp32, int8, x: np.ndarray) -> onnx.ModelProto:
    """``fp32`` quantised by onnxruntime (QDQ, per-channel 8-bit weights, uint8 activations)
    on the tiles ``x``, written to ``int8``."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from models.export import Tiles
    quantize_static(str(fp32), str(int8), Tiles(x), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return onnx.load(str(int8))


def quantised_same_net(tmp_path) -> tuple[onnx.ModelProto, np.ndarray]:
    """``dynamic_same_net`` with constant padding, quantised by onnxruntime (QDQ): each Pad
    sits between a DQ and a Q -> DQ -> Conv, as in Lite0 files exported before
    ``models.lite0.SAME_PAD_SIDE``."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    x = np.random.default_rng(2).uniform(0, 1, (8, 3, 64, 64)).astype(np.float32)
    fp32, int8 = tmp_path / "same.onnx", tmp_path / "same.int8.onnx"
    torch.onnx.export(dynamic_same_net(), (torch.from_numpy(x[:1]),), str(fp32),
                      input_names=["images"], output_names=["preds"], opset_version=17,
                      dynamo=False)
    onnx.save(free_input_size(onnx.load(str(fp32))), str(fp32))
    quant_pre_process(str(fp32), str(fp32), skip_symbolic_shape=True)   # as models.export
    return quantised(fp32, int8, x), x


def test_zero_padding_folds_into_the_convolutions_it_feeds(tmp_path):
    proto, x = quantised_same_net(tmp_path)
    pads = [n for n in proto.graph.node if n.op_type == "Pad"]
    assert len(pads) == 2
    folded, count = folded_pads(proto)
    assert count == 2
    assert not [n for n in folded.graph.node if n.op_type == "Pad"]
    assert len(folded.graph.node) == len(proto.graph.node) - 3 * count   # Pad, Q and DQ each
    wide = np.random.default_rng(3).uniform(0, 1, (1, 3, 64, 160)).astype(np.float32)
    for tiles in (x[:1], wide):
        np.testing.assert_array_equal(run(folded, tiles), run(proto, tiles))
        np.testing.assert_array_equal(run(folded, tiles, exact=True), run(proto, tiles, exact=True))
    # Padding that is not zero is not the convolution's own: left alone.
    reflect = onnx.ModelProto()
    reflect.CopyFrom(proto)
    for node in reflect.graph.node:
        if node.op_type == "Pad":
            del node.attribute[:]
            node.attribute.append(onnx.helper.make_attribute("mode", "reflect"))
    assert folded_pads(reflect)[1] == 0


def test_the_shipped_model_pads_inside_its_convolutions():
    assert not [n for n in onnx.load(SHIPPED).graph.node if n.op_type == "Pad"]


def test_float_output_needs_a_separate_file(tmp_path):
    from models.graph import main
    with pytest.raises(SystemExit):
        main([SHIPPED, "--float"])
    out = tmp_path / "float.onnx"
    assert main([SHIPPED, "--float", "--out", str(out)]) == 0
    assert computed_pads(onnx.load(str(out))) == []


def weight_codes(proto: onnx.ModelProto) -> list[tuple[str, bool, np.ndarray]]:
    """(layer, depthwise, int8 weights) of every quantised convolution and matrix product."""
    inits = {i.name: i for i in proto.graph.initializer}
    made_by = {o: n for n in proto.graph.node for o in n.output}
    out = []
    for node in proto.graph.node:
        source = made_by.get(node.input[1]) if node.op_type in ("Conv", "Gemm") else None
        if source is not None and source.op_type == "DequantizeLinear":
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            out.append((node.name, group > 1,
                        onnx.numpy_helper.to_array(inits[source.input[0]]).astype(np.int16)))
    return out


def small_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU6(),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.nn.ReLU6(),
        torch.nn.Conv2d(8, 6, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(6, 5)).eval()


def small_onnx(path, x: np.ndarray) -> None:
    torch.onnx.export(small_net(), (torch.from_numpy(x[:1]),), str(path),
                      input_names=["images"], output_names=["preds"], opset_version=17,
                      dynamic_axes={"images": {0: "batch"}, "preds": {0: "batch"}},
                      dynamo=False)


def quantised_8_bit(tmp_path) -> tuple[onnx.ModelProto, np.ndarray]:
    """A small network quantised by onnxruntime with full 8-bit weights, and its tiles."""
    x = np.random.default_rng(1).uniform(0, 1, (8, 3, 32, 32)).astype(np.float32)
    fp32, int8 = tmp_path / "small.onnx", tmp_path / "small.int8.onnx"
    small_onnx(fp32, x)
    return quantised(fp32, int8, x), x


def test_narrowed_holds_dense_weights_to_7_bits_and_leaves_depthwise_ones(tmp_path):
    proto, x = quantised_8_bit(tmp_path)
    before = weight_codes(proto)
    assert all(np.abs(q).max() == 127 for _, _, q in before)   # onnxruntime's full 8 bits
    narrow, changed = narrowed(proto)
    after = weight_codes(narrow)
    assert changed == 3                           # two dense convolutions and the Gemm
    for (name, depthwise, q8), (_, _, q7) in zip(before, after, strict=True):
        if depthwise:
            np.testing.assert_array_equal(q7, q8, err_msg=name)
        else:
            assert np.abs(q7).max() == NARROW, name
    # The weights move by at most half a step of the coarser grid.
    wide, fine = dequantised(narrow), dequantised(proto)
    for a, b in zip(wide.graph.initializer, fine.graph.initializer, strict=True):
        w7, w8 = onnx.numpy_helper.to_array(a), onnx.numpy_helper.to_array(b)
        if w7.ndim > 1:
            step = np.abs(w8).reshape(len(w8), -1).max(1) / NARROW
            assert (np.abs(w7 - w8).reshape(len(w8), -1).max(1) <= step / 2 + 1e-7).all()
    np.testing.assert_allclose(run(narrow, x), run(proto, x, exact=True), atol=0.05)
    assert narrowed(narrow)[1] == 0               # nothing left to narrow


def test_an_export_quantises_with_7_bit_dense_weights(tmp_path):
    from models.export import quantise
    fp32 = tmp_path / "small.onnx"
    x = np.random.default_rng(1).uniform(0, 1, (8, 3, 32, 32)).astype(np.float32)
    small_onnx(fp32, x)
    proto = onnx.load(str(fp32))
    proto.metadata_props.add(key="version", value="small-1")
    onnx.save(proto, str(fp32))
    quantise(fp32, tmp_path / "small.int8.onnx", x)
    int8 = onnx.load(str(tmp_path / "small.int8.onnx"))
    codes = weight_codes(int8)
    assert {depthwise for _, depthwise, _ in codes} == {False, True}
    assert all(np.abs(q).max() <= NARROW for _, depthwise, q in codes if not depthwise)
    assert {p.key: p.value for p in int8.metadata_props} == {"version": "small-1"}
    want = small_net()(torch.from_numpy(x)).detach().numpy()
    assert np.corrcoef(run(int8, x).ravel(), want.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("path", [SHIPPED, SHIPPED_VERIFIER])
def test_the_shipped_files_hold_dense_weights_to_7_bits(path):
    """Full 8-bit weights in a dense layer saturate on CPUs without VNNI (calibration/int8.md)."""
    codes = weight_codes(onnx.load(path))
    assert sum(not depthwise for _, depthwise, _ in codes) > 10
    wide = [name for name, depthwise, q in codes if not depthwise and np.abs(q).max() > NARROW]
    assert wide == []


def test_on_this_cpu_the_shipped_model_computes_what_its_int8_arithmetic_says():
    """onnxruntime's integer kernels against the same QDQ graph run as dequantise-then-float
    (optimisations off), on a simulated parcel: they differ by rounding only, where a
    saturating kernel moves class probabilities by 0.2."""
    from edge.config import EdgeConfig
    from edge.detect.model import Detector
    from edge.detect.pre import prepare
    from edge.tools.bench_detect import simulated_parcel

    info = Detector(SHIPPED, warmup=False).info
    image, _ = simulated_parcel(EdgeConfig())
    x = prepare(image, info.input_size, info.mean, info.std, info.channel_order,
                pixels=True).tensor
    proto = onnx.load(SHIPPED)
    native, reference = (1 / (1 + np.exp(-run(proto, x, exact)[..., 4:]))
                         for exact in (False, True))
    assert reference.max() > 0.3                  # the parcel holds something the model sees
    assert np.abs(native - reference).max() < 0.05
