"""Quantisation-aware fine-tuning (models/qat.py): weights rounded as the INT8 export rounds
them for the passes, float weights updated."""

import pytest
import torch

from models.graph import NARROW
from models.qat import DEPTHWISE_LEVELS, levels_of, on_export_grid, rounded


def convs_of(net: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]


def test_weights_round_per_output_channel_to_steps_of_their_largest():
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3) * torch.tensor([0.01, 0.1, 1.0, 10.0]).view(-1, 1, 1, 1)
    q = rounded(w, NARROW)
    for k in range(4):
        top = w[k].abs().max()
        step = top / NARROW
        assert q[k].abs().max() == pytest.approx(float(top), rel=1e-6)   # the largest stays
        codes = q[k] / step
        assert torch.allclose(codes, codes.round(), atol=1e-3)
        assert (q[k] - w[k]).abs().max() <= step / 2 + 1e-6
    assert len(torch.unique(rounded(torch.randn(1, 4096), 3))) <= 7
    assert torch.equal(rounded(torch.zeros(2, 5), NARROW), torch.zeros(2, 5))


def test_dense_convolutions_get_the_narrow_grid_and_grouped_ones_eight_bits():
    assert levels_of(torch.nn.Conv2d(8, 16, 1)) == NARROW
    assert levels_of(torch.nn.Conv2d(8, 8, 3, groups=8)) == DEPTHWISE_LEVELS
    assert levels_of(torch.nn.Conv2d(8, 16, 3, groups=2)) == DEPTHWISE_LEVELS   # as narrowed


def test_steps_run_on_rounded_weights_and_update_the_float_ones():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, groups=8), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 2, 1))
    x = torch.randn(2, 3, 12, 12)
    convs = convs_of(net)
    floats = [conv.weight.detach().clone() for conv in convs]
    with on_export_grid(net):
        inside = [conv.weight.detach().clone() for conv in convs]
        loss = net(x).square().mean()
        loss.backward()
    for conv, before, held in zip(convs, floats, inside, strict=True):
        assert torch.equal(conv.weight, before)                     # float weights back
        assert torch.equal(held, rounded(before, levels_of(conv)))  # the passes saw these
        assert not torch.equal(held, before)
    # The gradient is the rounded network's, not the float one's (straight through).
    twin = torch.nn.Sequential(*[torch.nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size,
                                                 groups=c.groups) if isinstance(c, torch.nn.Conv2d)
                                 else c for c in net])
    twin.load_state_dict(net.state_dict())
    with torch.no_grad():
        for t, held in zip(convs_of(twin), inside, strict=True):
            t.weight.copy_(held)
    twin(x).square().mean().backward()
    for conv, t in zip(convs, convs_of(twin), strict=True):
        assert torch.allclose(conv.weight.grad, t.weight.grad, atol=1e-6)


def test_float_weights_come_back_when_a_step_fails():
    net = torch.nn.Conv2d(3, 4, 3)
    before = net.weight.detach().clone()
    with pytest.raises(RuntimeError, match="boom"), on_export_grid(net):
        raise RuntimeError("boom")
    assert torch.equal(net.weight, before)


def test_a_training_run_with_qat_keeps_float_weights(tmp_path):
    """``models.train --qat`` runs its steps on the grid and saves the float weights: a
    checkpoint of rounded ones would lose the updates smaller than a step. With a learning
    rate of 0 the weights saved are the initial float ones, off the grid."""
    from models.train import main
    out = tmp_path / "run"
    assert main(["--out", str(out), "--cache", str(tmp_path / "cache"), "--parcels", "4",
                 "--val-parcels", "2", "--test-parcels", "2", "--batch", "2", "--workers", "0",
                 "--threads", "1", "--max-steps", "2", "--blocks", "1,2,1,1", "--input", "256",
                 "--epochs", "1", "--qat", "--lr", "0"]) == 0
    state = torch.load(out / "last.pt")["model"]
    dense = [w for name, w in state.items() if name.endswith("weight") and w.dim() == 4
             and w.shape[1] > 1]
    assert dense and all(not torch.equal(w, rounded(w, NARROW)) for w in dense)
