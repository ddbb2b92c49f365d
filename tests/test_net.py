"""ParcelNet's head: what inference computes is what training computed."""

import torch

from models.export import load_ema
from models.net import STRIDES, ParcelNet, upgrade_state


def _with_batch_statistics(model: ParcelNet, images: torch.Tensor) -> torch.Tensor:
    """Forward in training mode once, with every batch norm's running statistics set to
    exactly that batch's: inference on the same batch must then give the same output."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None   # a cumulative average: after one batch, that batch's figures
    model.train()
    with torch.no_grad():
        return model(images)


def test_inference_normalises_each_level_as_training_did():
    torch.manual_seed(0)
    model = ParcelNet(8)
    # Levels of different scale, as after training: a shared norm's pooled statistics would
    # then fit none of them.
    for m in model.smooth:
        m[1].weight.data.uniform_(0.2, 3.0)
    images = torch.rand(4, 3, 256, 256)
    trained = _with_batch_statistics(model, images)
    with torch.no_grad():
        inferred = model.eval()(images)
    # Running variances are unbiased (n / (n - 1)): a fraction of a per cent apart.
    torch.testing.assert_close(inferred, trained, rtol=0.02, atol=0.02)


def test_weights_of_the_shared_norm_head_still_load(tmp_path, earlier_head_layout):
    torch.manual_seed(0)
    source = ParcelNet(8)
    for m in source.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2)
    old = earlier_head_layout(source.state_dict())
    assert "tower.1.1.running_var" in old and not any(".norms." in k for k in old)
    upgraded = upgrade_state(old)
    assert set(upgraded) == set(source.state_dict())
    path = tmp_path / "old.pt"
    torch.save({"args": {}, "ema": old}, path)
    loaded, _ = load_ema(path)
    for block in range(2):
        shared = old[f"tower.{block}.1.running_var"]
        for level in range(len(STRIDES)):
            torch.testing.assert_close(
                loaded.tower[block].norms[level].running_var, shared)
        torch.testing.assert_close(loaded.tower[block].conv.weight,
                                   old[f"tower.{block}.0.weight"])
