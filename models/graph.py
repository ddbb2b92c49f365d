"""Make an exported detector take any tile size, with its padding held as constants.

    python -m models.graph models/lite0/lite0.int8.onnx

Lite0 files exported before ``models.lite0.SAME_PAD_SIDE`` worked out their "same" padding
in the graph, from the input's shape, with the export's side folded in as a constant: fed
another size they pad it back to the export's, and onnxruntime cannot fold padding computed at
run time into its convolutions. For sides that are multiples of 32 the padding is the same
whatever the side, so this evaluates it once at the file's own input size, stores it as
constants, drops the shape arithmetic, and declares the input's height and width free. The
weights, the quantisation and the outputs at the file's input size are unchanged.

    python -m models.graph models/lite0/lite0.int8.onnx --float --out /tmp/lite0.float.onnx

writes the same network in float32 with the INT8 file's weights (quantisation nodes removed):
the float graph to time beside the INT8 one where the export's own FP32 file is not at hand.
Its accuracy is not the FP32 export's: its weights keep their 8-bit rounding.

    python -m models.graph models/lite0/lite0.int8.onnx --narrow

requantises the weights of dense convolutions and matrix products to 7 bits (``narrowed``), as
``models.export`` now does: a file made with full 8-bit weights saturates on CPUs without VNNI.

    python -m models.graph models/lite0/lite0.int8.onnx --fold-pads

folds each zero Pad of such an older file, with the quantise-dequantise pair around it, into
the padding of the convolution it feeds (``folded_pads``): the outputs stay the same to the
bit, and onnxruntime no longer copies the padded tensors. New exports have no Pad nodes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper


def computed_pads(proto: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Pad nodes whose amounts the graph works out from a tensor's shape at run time."""
    made_by = {o: n for n in proto.graph.node for o in n.output}

    def from_a_shape(name: str, seen: set[str]) -> bool:
        node = made_by.get(name)
        if node is None or name in seen:
            return False
        seen.add(name)
        return node.op_type == "Shape" or any(from_a_shape(i, seen) for i in node.input if i)

    return [n for n in proto.graph.node
            if n.op_type == "Pad" and len(n.input) > 1 and from_a_shape(n.input[1], set())]


def fixed_input_size(proto: onnx.ModelProto) -> tuple[int, int]:
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") for d in dims[2:]):
        raise ValueError("the graph's input must be [B, 3, H, W] with a fixed H and W")
    return dims[2].dim_value, dims[3].dim_value


def free_input_size(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``proto`` with constant padding and a free input height and width."""
    pads = computed_pads(proto)
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    if pads:
        values = _evaluate(proto, [p.input[1] for p in pads])
        nodes = {n.name: n for n in out.graph.node}
        for pad, value in zip(pads, values, strict=True):
            name = f"{pad.name}/pads"
            out.graph.initializer.append(numpy_helper.from_array(value.astype(np.int64), name))
            nodes[pad.name].input[1] = name
        _drop_unused(out.graph)
    for index, name in ((2, "height"), (3, "width")):
        dim = out.graph.input[0].type.tensor_type.shape.dim[index]
        dim.ClearField("dim_value")
        dim.dim_param = name
    # Shapes inferred for the old input size would contradict the new one.
    del out.graph.value_info[:]
    onnx.checker.check_model(out)
    return out


def dequantised(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A float32 copy of a QDQ graph: quantised weights turned back into float initializers,
    activation quantise / dequantise pairs removed. The quantiser folds a ReLU or ReLU6 into the
    range of the convolution's output, so a pair after a convolution whose range starts at
    zero becomes a Clip to that range (the activation's bounds, without the rounding)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    rename: dict[str, str] = {}
    float_weights = []
    kept = []
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
            scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
            zero = (numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
                    if len(node.input) > 2 and node.input[2] else np.float32(0))
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if scale.ndim:   # per channel, along ``axis``
                shape = [1] * q.ndim
                shape[axis] = -1
                scale, zero = scale.reshape(shape), np.reshape(zero, shape)
            float_weights.append(numpy_helper.from_array((q - zero) * scale, node.output[0]))
        elif node.op_type == "QuantizeLinear":
            scale = float(numpy_helper.to_array(inits[node.input[1]]))
            zero = int(numpy_helper.to_array(inits[node.input[2]])) if len(node.input) > 2 \
                else 0
            rename[node.output[0]] = node.input[0]
            if zero == 0 and made_by.get(node.input[0]) == "Conv":
                bounds = [numpy_helper.from_array(np.array(v, np.float32), f"{node.name}/{k}")
                          for k, v in (("low", 0.0), ("high", 255 * scale))]
                float_weights.extend(bounds)
                clipped = f"{node.name}/clipped"
                kept.append(helper.make_node("Clip", [node.input[0], bounds[0].name,
                                                      bounds[1].name], [clipped],
                                             name=f"{node.name}/clip"))
                rename[node.output[0]] = clipped
        elif node.op_type == "DequantizeLinear" and node.input[0] in rename:
            rename[node.output[0]] = rename[node.input[0]]
        else:
            kept.append(node)
    for node in kept:
        for k, name in enumerate(node.input):
            node.input[k] = rename.get(name, name)
    for output in graph.output:
        output.name = rename.get(output.name, output.name)
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(float_weights)
    _drop_unused(graph)
    del graph.value_info[:]
    onnx.checker.check_model(out)
    return out


# Integer GEMMs on CPUs with AVX2 but no VNNI add two products of uint8 activations and int8
# weights into an int16 (VPMADDUBSW): 255 * 64 * 2 fits, 255 * 127 * 2 does not.
NARROW = 64


def narrowed(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of a QDQ graph whose dense convolutions (group 1) and matrix products have their
    int8 weights requantised to -NARROW..NARROW, and how many it changed. Depthwise
    convolutions keep 8 bits: onnxruntime runs them in kernels that do not saturate, and with
    nine weights a channel they lose most to a coarser grid."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    made_by = {o: n for n in graph.node for o in n.output}
    changed = 0
    for node in graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        source = made_by.get(node.input[1]) if node.op_type in ("Conv", "Gemm", "MatMul") \
            else None
        if group != 1 or source is None or source.op_type != "DequantizeLinear" \
                or source.input[0] not in inits:
            continue
        q = numpy_helper.to_array(inits[source.input[0]])
        if q.dtype != np.int8 or np.abs(q.astype(np.int16)).max() <= NARROW:
            continue
        scale = numpy_helper.to_array(inits[source.input[1]]).astype(np.float32)
        axis = next((a.i for a in source.attribute if a.name == "axis"), 1) % q.ndim
        shape = [1] * q.ndim
        if scale.ndim:                     # per channel along ``axis``
            shape[axis] = -1
        weights = q.astype(np.float32) * scale.reshape(shape)
        others = tuple(k for k in range(q.ndim) if k != axis or not scale.ndim)
        # Channels already within the narrow grid keep their steps (and their biases' range).
        top = np.abs(q.astype(np.float32)).max(others).reshape(scale.shape)
        wide = np.where(top > NARROW, scale * top / NARROW, scale).astype(np.float32)
        q7 = np.clip(np.round(weights / wide.reshape(shape)), -NARROW, NARROW).astype(np.int8)
        inits[source.input[0]].CopyFrom(numpy_helper.from_array(q7, source.input[0]))
        inits[source.input[1]].CopyFrom(numpy_helper.from_array(wide, source.input[1]))
        # An int32 bias is held in steps of input scale x weight scale, and the integer
        # kernels add it as it is: it moves to the new steps with the weights.
        bias = made_by.get(node.input[2]) if len(node.input) > 2 else None
        if bias is not None and bias.op_type == "DequantizeLinear" and bias.input[0] in inits:
            codes = numpy_helper.to_array(inits[bias.input[0]]).astype(np.float64)
            step = numpy_helper.to_array(inits[bias.input[1]]).astype(np.float64)
            new_step = (step * wide.reshape(-1) / scale.reshape(-1)).astype(np.float32)
            inits[bias.input[0]].CopyFrom(numpy_helper.from_array(
                np.round(codes * step / new_step).astype(np.int32), bias.input[0]))
            inits[bias.input[1]].CopyFrom(numpy_helper.from_array(
                new_step.reshape(step.shape), bias.input[1]))
        changed += 1
    return out, changed


def folded_pads(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of ``proto`` with each zero Pad that only feeds convolutions folded into their
    own padding: ``DQ -> Pad -> Q -> DQ -> Conv`` becomes ``DQ -> Conv`` with the Pad's amounts
    added to the Conv's ``pads``, and the count folded. Exact: a zero padded in float
    quantises to the zero point, which is what a quantised convolution pads with. Left alone
    unless the Q after the Pad uses the DQ's own scale and zero point, the Pad is constant
    zero on height and width only, and every reader of its DQ is a convolution reading it as
    its input."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    made_by = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def constant(name: str) -> np.ndarray | None:
        """The value of ``name`` where the graph holds it fixed: an initializer, a Constant,
        or a Cast of either."""
        if name in inits:
            return inits[name]
        node = made_by.get(name)
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(node.attribute[0].t)
        if node is not None and node.op_type == "Cast":
            return constant(node.input[0])
        return None

    def only_reader(name: str, op: str) -> onnx.NodeProto | None:
        found = readers.get(name, [])
        return found[0] if len(found) == 1 and found[0].op_type == op else None

    folded = 0
    for pad in [n for n in graph.node if n.op_type == "Pad"]:
        mode = next((helper.get_attribute_value(a) for a in pad.attribute if a.name == "mode"),
                    b"constant")
        amounts = constant(pad.input[1]) if len(pad.input) > 1 else None
        value = constant(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else 0
        before = made_by.get(pad.input[0])
        q = only_reader(pad.output[0], "QuantizeLinear")
        dq = q and only_reader(q.output[0], "DequantizeLinear")
        convs = readers.get(dq.output[0], []) if dq else []
        if (mode != b"constant" or amounts is None or amounts.shape != (8,)
                or np.any(amounts[[0, 1, 4, 5]]) or value is None or np.any(value)
                or before is None or before.op_type != "DequantizeLinear"
                or list(q.input[1:]) != list(before.input[1:])
                or not convs or any(c.op_type != "Conv" or c.input[0] != dq.output[0]
                                    for c in convs)):
            continue
        top, left, bottom, right = (int(amounts[k]) for k in (2, 3, 6, 7))
        for conv in convs:
            own = next((a for a in conv.attribute if a.name == "pads"), None)
            base = list(helper.get_attribute_value(own)) if own is not None else [0, 0, 0, 0]
            if own is not None:
                conv.attribute.remove(own)
            conv.attribute.append(helper.make_attribute(
                "pads", [base[0] + top, base[1] + left, base[2] + bottom, base[3] + right]))
            conv.input[0] = before.output[0]
        folded += 1
    _drop_unused(graph)
    return out, folded


def _evaluate(proto: onnx.ModelProto, names: list[str]) -> list[np.ndarray]:
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.INT64,
                                                                None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    dtype = np.uint8 if model_input.type == "tensor(uint8)" else np.float32
    return session.run(names, {model_input.name: np.zeros((1, 3, *fixed_input_size(proto)), dtype)})


def _drop_unused(graph: onnx.GraphProto) -> None:
    while True:
        read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        kept = [n for n in graph.node if any(o in read for o in n.output)]
        if len(kept) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(kept)
    read = {i for n in graph.node for i in n.input}
    kept = [i for i in graph.initializer if i.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("--out", type=Path, default=None, help="where to write (default: in place)")
    p.add_argument("--float", action="store_true",
                   help="also remove the quantisation: float32 with the file's INT8 weights")
    p.add_argument("--fold-pads", action="store_true",
                   help="fold zero padding into the convolutions it feeds (see folded_pads)")
    p.add_argument("--narrow", action="store_true",
                   help="requantise dense layers' weights to 7 bits (see narrowed); "
                        "the version gains -w7")
    args = p.parse_args(argv)
    if args.float and args.out is None:
        p.error("--float needs --out: it would replace the quantised file")
    proto = onnx.load(str(args.model))
    before = len(computed_pads(proto))
    fixed = free_input_size(proto)
    if args.float:
        fixed = dequantised(fixed)
    if args.fold_pads:
        fixed, folded = folded_pads(fixed)
        print(f"{folded} paddings folded into their convolutions")
    if args.narrow:
        fixed, changed = narrowed(fixed)
        for entry in fixed.metadata_props:
            if entry.key == "version" and changed:
                entry.value += "-w7"
        print(f"{changed} layers' weights narrowed to 7 bits")
    onnx.save(fixed, str(args.out or args.model))
    print(f"{args.out or args.model}: {before} computed paddings made constant, "
          f"{len(proto.graph.node) - len(fixed.graph.node)} nodes dropped, input "
          f"[B, 3, height, width]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
