"""Per image and method: deletion, insertion, ROAD-style and the randomisation sanity check.

Maps come from :class:`convscope.engine.Engine` through its public API (``run_batch`` with
``keep_raw=True``): the raw map and the exact model input tensor. Each method explains the trained
model's top-1 class. An importance map is the map at the input's resolution: a CAM (``h x w``)
upsampled bilinearly (as the engine draws it), an input gradient (``3 x H x W``) as the sum of
``|g|`` over colour channels. The scores are the target's softmax probability from the user's
model on batches of perturbed inputs (one batch per curve), on the model's device. A ``random``
row (seeded uniform importance) gives the chance level of every metric.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from convscope.engine import Engine, Target, ViewRequest
from convscope.evaluate import metrics
from convscope.evaluate.randomize import randomized_bundles
from convscope.models import ModelBundle

RANDOM = "random"


@dataclass(frozen=True)
class EvalSettings:
    algorithms: tuple[str, ...]
    cam_layer: str | None = None
    steps: int = 20
    road_fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
    road_noise: float = 0.01
    sanity_stages: int = 4
    seed: int = 0
    chunk: int = 32


@dataclass
class ImageEval:
    """One image's rows (one per method) and curves (for the plots)."""

    rows: list[dict] = field(default_factory=list)
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # method -> deletion/insertion


def importance(raw: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """An ``H x W`` importance map from a raw engine map (CAM: upsampled; gradient: sum of |g|)."""
    t = torch.as_tensor(np.asarray(raw, dtype=np.float32))
    if t.ndim == 3:
        t = t.abs().sum(0)
    if tuple(t.shape) != tuple(size):
        t = F.interpolate(t[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)


class Evaluator:
    """Holds the trained model's engine and one engine per randomisation stage."""

    def __init__(self, bundle: ModelBundle, settings: EvalSettings) -> None:
        self.bundle, self.settings = bundle, settings
        self.engine = Engine(bundle)
        self.stages = [(cut, Engine(b)) for cut, b in randomized_bundles(bundle, settings.sanity_stages, settings.seed)]
        from convscope.evaluate.randomize import parametrised_layers

        self.layer_count = len(parametrised_layers(bundle.module))
        self.request = ViewRequest(cam_layer=settings.cam_layer, algorithms=settings.algorithms,
                                   panels=("input", "predictions"), keep_raw=True, top_k=1)

    def close(self) -> None:
        for engine in [self.engine, *(e for _, e in self.stages)]:
            engine.close()

    def _maps(self, engine: Engine, frames: list[np.ndarray], classes: list[int]) -> list[dict]:
        """Raw maps per image for fixed classes (grouped: one batched pass per class)."""
        out: list[dict] = [{} for _ in frames]
        groups: dict[int, list[int]] = {}
        for i, c in enumerate(classes):
            groups.setdefault(c, []).append(i)
        for c, members in groups.items():
            t = Target("class", c)
            req = dataclasses.replace(self.request, cam_target=t, selection_target=t)
            for i, r in zip(members, engine.run_batch([frames[i] for i in members], req), strict=True):
                out[i] = {name: m.raw for name, m in r.maps.items()}
        return out

    def evaluate(self, frames: list[np.ndarray], names: list[str]) -> ImageEval:
        s = self.settings
        first = self.engine.run_batch(frames, self.request)
        classes = [r.predictions[0].index for r in first]
        device = next(self.bundle.module.parameters()).device
        x = torch.cat([torch.as_tensor(r.input_tensor) for r in first]).to(device)
        n, _, h, w = x.shape
        target = torch.tensor(classes, device=device)
        module = self.bundle.module

        def score(batch: torch.Tensor, i: int | None) -> torch.Tensor:
            with torch.inference_mode():
                p = torch.softmax(module(batch).float(), dim=1)
            idx = target[i].expand(len(batch)) if i is not None else target
            return p.gather(1, idx.view(-1, 1))[:, 0]

        g = torch.Generator().manual_seed(s.seed)
        maps: dict[str, torch.Tensor] = {name: torch.stack([importance(r.maps[name].raw, (h, w)) for r in first])
                                         for name in s.algorithms}
        maps[RANDOM] = torch.rand((n, h, w), generator=g)
        stage_maps = [(cut, self._maps(engine, frames, classes)) for cut, engine in self.stages]
        result = ImageEval()
        for method, imp in maps.items():
            imp = imp.to(device)
            d_auc, d_curve = metrics.deletion(score, x, imp, s.steps, chunk=s.chunk)
            i_auc, i_curve = metrics.insertion(score, x, imp, s.steps, chunk=s.chunk)
            road = metrics.road(score, x, imp, s.road_fractions, s.road_noise, seed=s.seed)
            result.curves[method] = {"deletion": d_curve.cpu().numpy(), "insertion": i_curve.cpu().numpy()}
            rhos = {}
            if method != RANDOM:
                for cut, per_image in stage_maps:
                    rand = torch.stack([importance(m[method], (h, w)) for m in per_image]).to(device)
                    rhos[f"sanity_rho_top{cut}"] = metrics.spearman(imp, rand).cpu().numpy()
            for j in range(n):
                row = {"item": names[j], "method": method, "class": classes[j],
                       "probability": float(first[j].predictions[0].probability),
                       "deletion_auc": float(d_auc[j]), "insertion_auc": float(i_auc[j]),
                       "road_morf": float(road["morf"][j].mean()), "road_lerf": float(road["lerf"][j].mean()),
                       "road_score": float(road["score"][j])}
                row.update({k: float(v[j]) for k, v in rhos.items()})
                result.rows.append(row)
        return result
