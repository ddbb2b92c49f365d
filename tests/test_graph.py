"""``models.graph``: an exported detector made to take any tile size (its computed "same"
padding held as constants), and the float graph of a quantised file for timing."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models.graph import computed_pads, dequantised, free_input_size

SHIPPED = "models/lite0/lite0.int8.onnx"


def run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
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


def test_float_output_needs_a_separate_file(tmp_path):
    from models.graph import main
    with pytest.raises(SystemExit):
        main([SHIPPED, "--float"])
    out = tmp_path / "float.onnx"
    assert main([SHIPPED, "--float", "--out", str(out)]) == 0
    assert computed_pads(onnx.load(str(out))) == []
