"""Layouts from shapes: which outputs are feature maps, and how they become B x C x h x w."""

from __future__ import annotations

import pytest
import torch

from convscope.models.layout import classify, to_features, to_map, token_grid


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((512, 7, 7), ("map", (7, 7), 0)),  # ResNet's layer4
        ((56, 56, 96), ("channels_last", (56, 56), 0)),  # a Swin stage (timm keeps channels last)
        ((7, 7, 768), ("channels_last", (7, 7), 0)),
        ((96, 56, 56), ("map", (56, 56), 0)),
        ((56, 56, 56), ("map", (56, 56), 0)),  # ambiguous: channels first, as nn.Conv2d
        ((2048, 1, 1), ("vector", None, 0)),  # after global pooling
        ((1000,), ("vector", None, 0)),
        ((197, 192), ("tokens", (14, 14), 1)),  # ViT: class token + 14x14
        ((198, 192), ("tokens", (14, 14), 2)),  # DeiT distilled: class and distillation tokens
        ((201, 192), ("tokens", (14, 14), 5)),  # class token + 4 registers
        ((196, 384), ("tokens", (14, 14), 0)),  # no class token (global average pooling ViTs)
        ((3, 5, 7, 9), (None, None, 0)),
    ],
)
def test_classify_shapes_at_224(shape, expected):
    assert classify(shape, (224, 224)) == expected


def test_linear_outputs_are_channels_last():
    # ConvNeXt's block.5 (nn.Linear on B x h x w x C) even where channels-first would be plausible
    assert classify((56, 56, 56), (224, 224), channels_last=True) == ("channels_last", (56, 56), 0)


def test_token_grid_prefers_the_patch_embedding_and_takes_a_given_grid():
    # 12 x 20 patches of a 192 x 320 input with one class token: the earlier conv's grid decides
    assert token_grid(241, (192, 320), hints=[(12, 20)]) == ((12, 20), 1)
    assert token_grid(241, (192, 320)) == ((12, 20), 1)
    assert classify((50, 64), (224, 224), grid=(7, 7)) == ("tokens", (7, 7), 1)
    # a sequence that is no grid at all is a vector of features
    assert classify((7, 64), (224, 224)) == ("vector", None, 0)


def test_to_map_and_features_agree_with_written_out_indexing():
    g = torch.Generator().manual_seed(0)
    nchw = torch.randn(2, 8, 3, 4, generator=g)
    nhwc = nchw.permute(0, 2, 3, 1).contiguous()
    assert torch.equal(to_map(nhwc, "channels_last", (3, 4)), nchw)
    cls = torch.randn(2, 1, 8, generator=g)
    tokens = torch.cat([cls, nhwc.reshape(2, 12, 8)], dim=1)
    assert torch.equal(to_map(tokens, "tokens", (3, 4), prefix=1), nchw)
    # a feature's value is its maximum over every other dimension (like a conv channel's score)
    assert torch.equal(to_features(nchw, "map"), nchw.amax(dim=(2, 3)))
    assert torch.equal(to_features(tokens, "tokens"), tokens.amax(dim=1))
    assert torch.equal(to_features(nchw[:, :, :1, :1], "vector"), nchw[:, :, 0, 0])
    with pytest.raises(ValueError):
        to_map(nchw[:, :, 0, 0], "vector", None)
