"""The top-k patches of every channel of a layer, kept on the device, one batched update per frame.

Per frame and channel the candidate is the channel's maximum over its map, at its argmax position;
its patch is the receptive-field box of that position (:mod:`convscope.units.receptive_field`).
Every channel keeps ``k`` slots (score, frame id, scene id, position, box in the model input and,
optionally, a small ``patch x patch`` uint8 crop of the input): memory is ``channels x k`` entries
whatever the length of the session.

**No near-duplicates.** A video repeats itself: consecutive frames are near-identical, and the top-9
of a unit would be nine copies of one patch. Frames get a *scene* id: a frame whose 16x16 grey
thumbnail (of a ~64 px subsample) differs from the previous frame's by less than ``dedup`` grey levels (mean absolute
difference) keeps the previous frame's scene, any other frame starts a new one. A candidate
*conflicts* with a kept entry of the same scene whose box overlaps its own by more than ``overlap``
(intersection over union); then it replaces the best such entry only when it beats it (and drops the
other conflicting ones), otherwise it is dropped. So one unit holds several patches of one scene
only when they are far apart. Without a conflict, a candidate replaces the channel's weakest entry
when it beats it.

The update is a handful of tensor operations over ``channels x k`` per frame (no Python loop over
channels); the only host synchronisation is reading which channels took a candidate, to crop
their patches (with :func:`torchvision.ops.roi_align`, once per distinct position).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from convscope.units.receptive_field import ReceptiveField


@dataclass(frozen=True)
class Entry:
    """One kept patch of one channel."""

    score: float
    frame: int
    scene: int
    position: tuple[int, int]  # (y, x) in the layer's grid
    box: tuple[float, float, float, float]  # [x0, y0, x1, y1] in the model input, exclusive end


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of ``... x 4`` boxes ``[x0, y0, x1, y1]`` (broadcast)."""
    ix = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    iy = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = ix * iy
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / (area_a + area_b - inter).clamp(min=1e-9)


class TopKTracker:
    """Top-k patches of every channel of one layer.

    Args:
        channels: channels of the layer.
        k: patches kept per channel (default 9).
        rf: the layer's receptive field (boxes); None: each position's grid cell scaled to the input.
        input_size: ``(H, W)`` of the model input (taken from ``rf`` when given).
        patch: side of the stored crops in pixels (0: keep no crops, only boxes).
        overlap: IoU above which two boxes of one scene are "the same place".
        dedup: mean absolute difference of 16x16 grey thumbnails (0..255) under which a frame
            counts as the same scene as the previous one (0: never).
        device: where the state lives (the activations' device).
        history: per-frame maxima kept per channel for a histogram (a ring of the last N frames; 0: none).
    """

    def __init__(self, channels: int, k: int = 9, *, rf: ReceptiveField | None = None,
                 input_size: tuple[int, int] | None = None, patch: int = 48, overlap: float = 0.3,
                 dedup: float = 3.0, device: torch.device | str = "cpu", history: int = 0) -> None:
        if k < 1:
            raise ValueError(f"k must be 1 or more, got {k}")
        dev = torch.device(device)
        self.channels, self.k, self.rf, self.patch = channels, k, rf, patch
        self.overlap, self.dedup, self.device = overlap, dedup, dev
        self.input_size = rf.input_size if rf is not None else input_size
        self.score = torch.full((channels, k), float("-inf"), device=dev)
        self.frame = torch.full((channels, k), -1, dtype=torch.long, device=dev)
        self.scene = torch.full((channels, k), -1, dtype=torch.long, device=dev)
        self.pos = torch.zeros((channels, k, 2), dtype=torch.long, device=dev)
        self.box = torch.zeros((channels, k, 4), device=dev)
        self.patches = (torch.zeros((channels, k, 3, patch, patch), dtype=torch.uint8, device=dev)
                        if patch else None)
        # session statistics per channel: frames seen, sum of per-frame maxima, best, ever active
        self.frames = 0
        self.total = torch.zeros(channels, dtype=torch.float64, device=dev)
        self.best = torch.full((channels,), float("-inf"), device=dev)
        self.active = torch.zeros(channels, dtype=torch.bool, device=dev)
        self.history = torch.full((history, channels), float("nan"), device=dev) if history else None
        self.last = torch.full((channels,), float("nan"), device=dev)  # the latest frame's maxima
        self._thumb: torch.Tensor | None = None
        self._last_scene = -1
        self._slots = torch.arange(k, device=dev)

    # -- per frame ---------------------------------------------------------------------------
    def scenes_for(self, images: torch.Tensor | None, frame_ids: torch.Tensor) -> torch.Tensor:
        """Scene id per row: the previous frame's when near-identical to it, else the frame id."""
        if images is None or self.dedup <= 0:
            if len(frame_ids):
                self._last_scene = int(frame_ids[-1])
            return frame_ids.clone()
        return self.scenes_of_thumbs(thumbnails(images), frame_ids)

    def scenes_of_thumbs(self, thumbs: torch.Tensor, frame_ids: torch.Tensor) -> torch.Tensor:
        """:meth:`scenes_for` from the rows' :func:`thumbnails` (computed where the images are)."""
        thumbs = thumbs.to(self.device)
        prev = thumbs[:-1] if self._thumb is None else torch.cat([self._thumb[None], thumbs[:-1]])
        diffs = (thumbs[-len(prev):] - prev).abs().mean(1).tolist()
        if self._thumb is None:
            diffs = [float("inf")] + diffs
        out, last = [], self._last_scene
        for fid, diff in zip(frame_ids.tolist(), diffs, strict=True):
            last = last if (diff < self.dedup and last >= 0) else fid
            out.append(last)
        self._thumb, self._last_scene = thumbs[-1].clone(), last
        return torch.tensor(out, dtype=torch.long, device=frame_ids.device)

    def update(self, acts: torch.Tensor, frame_ids: Sequence[int] | torch.Tensor,
               images: torch.Tensor | None = None, scenes: Sequence[int] | torch.Tensor | None = None) -> int:
        """Take a batch of frames into account.

        Args:
            acts: the layer's activations, ``B x C x h x w`` (:meth:`LayerInfo.as_map`).
            frame_ids: one id per row (frame index, or any id the caller maps back to a source).
            images: the model inputs, ``B x 3 x H x W`` on the 0..255 scale (before normalisation),
                for the crops and the near-duplicate test; None keeps boxes only.
            scenes: scene ids per row, instead of the thumbnail test.

        Returns:
            How many (channel, row) candidates were taken.
        """
        acts = acts.detach()
        b, c, h, w = acts.shape
        if c != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {c}")
        vals, where = acts.to(self.device).flatten(2).float().max(dim=2)  # B x C
        return self.update_maxima(vals, where // w, where % w, (h, w), frame_ids, images=images, scenes=scenes)

    def update_maxima(self, vals: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, grid: tuple[int, int],
                      frame_ids: Sequence[int] | torch.Tensor, images: torch.Tensor | None = None,
                      scenes: Sequence[int] | torch.Tensor | None = None,
                      thumbs: torch.Tensor | None = None) -> int:
        """:meth:`update` from each row's per-channel candidate: its maximum ``vals`` (``B x C``) at
        ``(ys, xs)`` in an ``h x w`` grid. ``thumbs`` (:func:`thumbnails` of the rows) stands in for
        ``images`` in the near-duplicate test where the images are elsewhere (``units --ray``: the
        workers send their batches' candidates and thumbnails, the driver takes them in order)."""
        dev = self.device
        vals, ys, xs = vals.to(dev), ys.to(dev), xs.to(dev)
        b, c = vals.shape
        if c != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {c}")
        ids = torch.as_tensor(list(frame_ids) if not isinstance(frame_ids, torch.Tensor) else frame_ids,
                              dtype=torch.long).to(dev)
        if scenes is not None:
            scene_ids = torch.as_tensor(list(scenes) if not isinstance(scenes, torch.Tensor) else scenes,
                                        dtype=torch.long).to(dev)
            self._last_scene = int(scene_ids[-1])
        elif thumbs is not None and self.dedup > 0:
            scene_ids = self.scenes_of_thumbs(thumbs, ids)
        else:
            scene_ids = self.scenes_for(images, ids)
        vals = torch.nan_to_num(vals, nan=float("-inf"), posinf=float("inf"))
        boxes = self._boxes(ys, xs, grid)  # B x C x 4
        if self.history is not None:
            n = min(b, len(self.history))
            rows = (torch.arange(b - n, b, device=dev) + self.frames) % len(self.history)
            self.history[rows] = vals[b - n:]
        self.last = vals[-1].clone()
        self.frames += b
        finite = torch.isfinite(vals)
        self.total += torch.where(finite, vals, 0).double().sum(0)
        self.best = torch.maximum(self.best, vals.amax(0))
        self.active |= (vals > 0).any(0)
        taken = 0
        for i in range(b):
            taken += self._take(vals[i], ys[i], xs[i], boxes[i], ids[i], scene_ids[i], images, i)
        return taken

    def _boxes(self, ys: torch.Tensor, xs: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        if self.rf is not None:
            return self.rf.boxes(ys, xs)
        hh, ww = self.input_size or grid
        sy, sx = hh / grid[0], ww / grid[1]
        return torch.stack([xs * sx, ys * sy, (xs + 1) * sx, (ys + 1) * sy], dim=-1).float()

    def _take(self, s: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, boxes: torch.Tensor,
              fid: torch.Tensor, scene: torch.Tensor, images: torch.Tensor | None, row: int) -> int:
        valid = self.frame >= 0
        conflict = valid & (self.scene == scene) & (box_iou(boxes[:, None, :], self.box) > self.overlap)
        has_conflict = conflict.any(1)
        cmax, cslot = torch.where(conflict, self.score, float("-inf")).max(1)
        weakest, wslot = self.score.min(1)
        slot = torch.where(has_conflict, cslot, wslot)
        accept = torch.isfinite(s) & torch.where(has_conflict, s > cmax, s > weakest)
        write = (self._slots[None, :] == slot[:, None]) & accept[:, None]
        kill = conflict & accept[:, None] & ~write
        self.score = torch.where(write, s[:, None], torch.where(kill, float("-inf"), self.score))
        self.frame = torch.where(write, fid, torch.where(kill, -1, self.frame))
        self.scene = torch.where(write, scene, torch.where(kill, -1, self.scene))
        pos = torch.stack([ys, xs], dim=-1)
        self.pos = torch.where(write[..., None], pos[:, None, :], self.pos)
        self.box = torch.where(write[..., None], boxes[:, None, :], self.box)
        idx = torch.nonzero(accept).flatten()  # the one host synchronisation
        n = int(idx.numel())
        if n and self.patches is not None and images is not None:
            lin = ys[idx] * 100_000 + xs[idx]
            uniq, inverse = torch.unique(lin, return_inverse=True)
            first = torch.zeros_like(uniq).scatter_(0, inverse, torch.arange(n, device=self.device))
            rois = boxes[idx[first]]
            crops = _crop(images[row: row + 1].to(self.device), rois, self.patch)
            self.patches[idx, slot[idx]] = crops[inverse]
        return n

    # -- reading -----------------------------------------------------------------------------
    def order(self) -> torch.Tensor:
        """``C x k`` slot indices, best first (empty slots last)."""
        return torch.argsort(self.score, dim=1, descending=True, stable=True)

    def entries(self, channel: int) -> list[Entry]:
        """The channel's kept patches, best first."""
        order = torch.argsort(self.score[channel], descending=True, stable=True).tolist()
        out = []
        for j in order:
            if int(self.frame[channel, j]) < 0:
                continue
            out.append(Entry(float(self.score[channel, j]), int(self.frame[channel, j]), int(self.scene[channel, j]),
                             (int(self.pos[channel, j, 0]), int(self.pos[channel, j, 1])),
                             tuple(float(v) for v in self.box[channel, j].tolist())))  # type: ignore[arg-type]
        return out

    def patches_of(self, channel: int) -> torch.Tensor:
        """``n x 3 x P x P`` uint8 crops of the channel's kept patches, best first."""
        if self.patches is None:
            raise ValueError("this tracker keeps no patches (patch=0)")
        order = torch.argsort(self.score[channel], descending=True, stable=True)
        order = order[self.frame[channel, order] >= 0]
        return self.patches[channel, order]

    def mean(self) -> torch.Tensor:
        """Per channel, the mean over frames of its maximum."""
        return (self.total / max(self.frames, 1)).float()

    def histogram(self, channel: int, bins: int = 32) -> tuple[list[int], float, float]:
        """Counts of the channel's per-frame maxima over the kept history, and the range they span."""
        if self.history is None:
            raise ValueError("this tracker keeps no history (history=0)")
        v = self.history[:, channel]
        v = v[torch.isfinite(v)]
        if not v.numel():
            return [0] * bins, 0.0, 0.0
        lo, hi = float(v.min()), float(v.max())
        counts = torch.histc(v.float(), bins=bins, min=lo, max=hi if hi > lo else lo + 1)
        return [int(c) for c in counts.tolist()], lo, hi

    @property
    def nbytes(self) -> int:
        tensors = [self.score, self.frame, self.scene, self.pos, self.box, self.total, self.best, self.active,
                   self.last]
        if self.history is not None:
            tensors.append(self.history)
        if self.patches is not None:
            tensors.append(self.patches)
        return sum(t.numel() * t.element_size() for t in tensors)

    # -- persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {name: getattr(self, name).cpu() for name in
                 ("score", "frame", "scene", "pos", "box", "total", "best", "active")}
        state.update(frames=self.frames, last_scene=self._last_scene,
                     thumb=None if self._thumb is None else self._thumb.cpu())
        if self.patches is not None:
            state["patches"] = self.patches.cpu()
        return state

    def load_state_dict(self, state: dict) -> None:
        for name in ("score", "frame", "scene", "pos", "box", "total", "best", "active", "patches"):
            if name in state and (name != "patches" or self.patches is not None):
                setattr(self, name, state[name].to(self.device))
        self.frames, self._last_scene = int(state["frames"]), int(state["last_scene"])
        self._thumb = None if state.get("thumb") is None else state["thumb"].to(self.device)


def thumbnails(images: torch.Tensor) -> torch.Tensor:
    """``B x 256`` grey 16x16 thumbnails (of a ~64 px subsample) of ``B x 3 x H x W`` 0..255 images:
    what the near-duplicate test compares."""
    step = max(1, min(images.shape[-2:]) // 64)  # a 64-ish px subsample is plenty for a 16x16 thumbnail
    return F.adaptive_avg_pool2d(images[:, :, ::step, ::step].float(), 16).mean(1).flatten(1)


def _crop(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """``N x 3 x size x size`` uint8 crops of a ``1 x 3 x H x W`` 0..255 image at ``N x 4`` boxes."""
    from torchvision.ops import roi_align

    rois = torch.cat([torch.zeros(len(boxes), 1, device=boxes.device), boxes.float()], dim=1)
    out = roi_align(image.float(), rois, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return out.round().clamp(0, 255).to(torch.uint8)
