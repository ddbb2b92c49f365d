"""Training targets and loss for the ParcelNet head.

Assignment is centre sampling on the level that fits a box's size (FCOS), with the nearest
cell as a fallback so thin and tiny objects (a razor blade edge-on) always get a positive.
Classification uses quality focal loss: a positive cell's target rises with the IoU its own box
reaches, so scores rank boxes by how well they fit, which is what NMS and mAP reward.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

RADIUS = 2.5            # centre sampling radius, in strides
TOP_K = 9               # cells per box under task-aligned assignment
# Largest box side (input px) each level answers for; neighbours overlap by a factor of two.
LEVEL_RANGE = {8: (0.0, 80.0), 16: (40.0, 160.0), 32: (80.0, 1e9)}


def cell_grid(input_size: tuple[int, int], strides, device=None):
    """Centres (N, 2) in input pixels and the stride of each cell (N,), contract order."""
    centres, cell_strides = [], []
    h, w = input_size
    for s in strides:
        ys, xs = torch.meshgrid(torch.arange(h // s, device=device),
                                torch.arange(w // s, device=device), indexing="ij")
        c = torch.stack([xs, ys], -1).reshape(-1, 2).float().add(0.5).mul(s)
        centres.append(c)
        cell_strides.append(torch.full((c.shape[0],), float(s), device=device))
    return torch.cat(centres), torch.cat(cell_strides)


def box_iou_giou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise IoU and GIoU of xyxy boxes of equal shape [..., 4]."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a + area_b - inter + 1e-7
    iou = inter / union
    hull = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2]))
    hull_area = hull.clamp(min=0).prod(-1) + 1e-7
    return iou, iou - (hull_area - union) / hull_area


def assign(gt_boxes: torch.Tensor, gt_valid: torch.Tensor, centres: torch.Tensor,
           strides: torch.Tensor, quality: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the ground-truth box each cell answers for, -1 for background: [B, N].

    gt_boxes [B, M, 4] xyxy input pixels, gt_valid [B, M] bool (padding is False).
    ``quality`` [B, N, M] (task alignment: how well each cell already predicts each box)
    keeps, of each box's candidates, the TOP_K best aligned: for a thin object lying
    diagonally most of its box is background, and the aligned cells are the ones on it.
    """
    b, m = gt_valid.shape
    if m == 0:
        return torch.full((b, centres.shape[0]), -1, dtype=torch.long, device=centres.device)
    cx, cy = centres[:, 0].view(1, -1, 1), centres[:, 1].view(1, -1, 1)
    x1, y1, x2, y2 = (gt_boxes[..., k].unsqueeze(1) for k in range(4))       # [B, 1, M]
    s = strides.view(1, -1, 1)
    inside = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)
    gcx, gcy = (x1 + x2) / 2, (y1 + y2) / 2
    near = ((cx - gcx).abs() < RADIUS * s) & ((cy - gcy).abs() < RADIUS * s)
    side = torch.maximum(x2 - x1, y2 - y1)
    lo = torch.zeros_like(strides)
    hi = torch.zeros_like(strides)
    for st, (a, z) in LEVEL_RANGE.items():
        lo[strides == st], hi[strides == st] = a, z
    fits = (side >= lo.view(1, -1, 1)) & (side <= hi.view(1, -1, 1))
    valid = gt_valid.unsqueeze(1)
    cand = inside & near & fits & valid
    if quality is not None:
        cand = inside & fits & valid   # alignment, not distance, picks among these
        score = torch.where(cand, quality, torch.full_like(quality, -1.0))
        k = min(TOP_K, score.shape[1])
        top = score.topk(k, dim=1).indices                                  # [B, K, M]
        chosen = torch.zeros_like(cand)
        chosen.scatter_(1, top, True)
        cand &= chosen
    # Fallback: a box with no candidate takes the cell nearest its centre on a level it fits.
    dist = (cx - gcx) ** 2 + (cy - gcy) ** 2 + (~fits) * 1e12
    nearest = dist.argmin(1)                                                # [B, M]
    lonely = valid.squeeze(1) & ~cand.any(1)
    rows = torch.nonzero(lonely, as_tuple=True)
    cand[rows[0], nearest[rows], rows[1]] = True
    # A cell inside several boxes answers for the smallest.
    area = ((x2 - x1) * (y2 - y1)).expand_as(cand)
    area = torch.where(cand, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(2)
    return torch.where(torch.isfinite(best_area), best, torch.full_like(best, -1))


def alignment(boxes: torch.Tensor, logits: torch.Tensor, gt_boxes: torch.Tensor,
              gt_classes: torch.Tensor, alpha: float = 1.0, beta: float = 6.0) -> torch.Tensor:
    """[B, N, M]: score of the box's class ** alpha * IoU with the box ** beta (TOOD)."""
    with torch.no_grad():
        iou, _ = box_iou_giou(boxes.unsqueeze(2), gt_boxes.unsqueeze(1))   # [B, N, M]
        idx = gt_classes.unsqueeze(1).expand(-1, logits.shape[1], -1)
        score = logits.sigmoid().gather(2, idx)                             # [B, N, M]
        return score.pow(alpha) * iou.clamp(min=0).pow(beta)


def detection_loss(pred: torch.Tensor, gt_boxes: torch.Tensor, gt_classes: torch.Tensor,
                   gt_valid: torch.Tensor, centres: torch.Tensor, strides: torch.Tensor,
                   aligned: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """pred [B, N, 4 + C] as the head emits it; gt_classes [B, M] long. ``aligned`` picks
    positives by task alignment (``assign``) rather than by distance alone."""
    ltrb, logits = pred[..., :4], pred[..., 4:]
    s = strides.view(1, -1, 1)
    c = centres.unsqueeze(0)
    boxes = torch.cat([c - ltrb[..., :2] * s, c + ltrb[..., 2:] * s], -1)   # [B, N, 4]
    quality = alignment(boxes, logits, gt_boxes, gt_classes) if aligned and \
        gt_boxes.shape[1] else None
    owner = assign(gt_boxes, gt_valid, centres, strides, quality)            # [B, N]
    pos = owner >= 0
    n_pos = max(int(pos.sum()), 1)
    target = torch.zeros_like(logits)
    box_loss = class_loss = logits.new_zeros(())
    if pos.any():
        bi, ci = torch.nonzero(pos, as_tuple=True)
        gi = owner[bi, ci]
        tb = gt_boxes[bi, gi]
        iou, giou = box_iou_giou(boxes[bi, ci], tb)
        # Scale-free box loss: GIoU on the box, plus L1 on sides in stride units for early pull.
        tltrb = torch.cat([c[0, ci] - tb[:, :2], tb[:, 2:] - c[0, ci]], -1) / s[0, ci]
        l1 = (ltrb[bi, ci] - tltrb.clamp(min=0)).abs().sum(-1)
        box_loss = ((1 - giou) + 0.1 * l1).sum() / n_pos
        # Half the target is the box's quality, half is a firm 'this is an object': from
        # scratch, IoU alone starts near zero and starves the classifier of signal.
        target[bi, ci, gt_classes[bi, gi]] = 0.5 + 0.5 * iou.detach().clamp(min=0)
        # The focal term barely pushes the wrong classes down where an object is (their
        # probabilities are small, so their modulation is tiny): a softmax cross-entropy over
        # the classes at positive cells teaches one class from another directly.
        class_loss = F.cross_entropy(logits[bi, ci], gt_classes[bi, gi])
    prob = logits.sigmoid()
    qfl = F.binary_cross_entropy_with_logits(logits, target, reduction="none") \
        * (prob - target).abs().pow(2)
    cls_loss = qfl.sum() / n_pos
    loss = cls_loss + 2.0 * box_loss + 0.5 * class_loss
    return loss, {"cls": float(cls_loss.detach()), "box": float(box_loss.detach()),
                  "ce": float(class_loss.detach()), "pos": float(n_pos)}
