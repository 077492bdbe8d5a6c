"""Frame -> input tensor: the fast uint8 resize on the CPU matches the float path and PIL."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from convscope.models import Preprocessing
from convscope.models.preprocess import frame_to_tensor, resize_crop


@pytest.mark.parametrize(("interpolation", "pil", "tolerance"), [
    ("bilinear", Image.Resampling.BILINEAR, 1.0),
    ("bicubic", Image.Resampling.BICUBIC, 5.0),
])
def test_uint8_resize_matches_the_float_path(interpolation, pil, tolerance):
    frame = data.astronaut()  # 512x512, real detail
    prep = Preprocessing(input_size=(224, 200), interpolation=interpolation)
    t = frame_to_tensor(frame, "cpu")
    fast = resize_crop(t, prep)
    slow = resize_crop(t.float(), prep)  # float input takes the float kernel
    assert fast.dtype == torch.float32 and fast.shape == (1, 3, 224, 200)
    assert (fast - slow).abs().max().item() <= tolerance
    assert (fast - slow).abs().mean().item() < 0.5
    # and both are the antialiased resize PIL does (not a plain point sampling)
    ref = np.asarray(Image.fromarray(frame).resize((200, 224), pil)).astype(np.float32)
    got = fast[0].permute(1, 2, 0).numpy()
    assert np.abs(got - ref).mean() < 1.0


def test_center_crop_policy_crops_after_the_uint8_resize():
    frame = data.chelsea()  # 300x451
    prep = Preprocessing(input_size=(224, 224), resize_size=256, policy="center_crop")
    x = resize_crop(frame_to_tensor(frame, "cpu"), prep)
    full = resize_crop(frame_to_tensor(frame, "cpu").float(), prep)
    assert x.shape == (1, 3, 224, 224)
    assert (x - full).abs().max().item() <= 1.0
