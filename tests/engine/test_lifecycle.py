"""The user's model is left as it was: hooks removed, train/eval, requires_grad and device restored,
also when something raises inside ``run``; memory stays flat over many frames."""

from __future__ import annotations

import gc

import numpy as np
import psutil
import pytest
import torch
from engine_helpers import MixedReLUNet, seeded, tiny_bundle

from convscope.engine import Engine, ViewRequest

ALL = ("gradcam", "guided_backprop", "guided_gradcam", "saliency", "gradcam_pp")


def _hook_count(module: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(m._backward_pre_hooks)
        for m in module.modules()
    )


def _mode_stack_depth() -> int:
    return torch._C._len_torch_function_stack()


class Boom(RuntimeError):
    pass


def test_exception_inside_run_leaves_no_hook_and_restores_state(chelsea):
    module = seeded(MixedReLUNet)
    bundle = tiny_bundle(module)
    module.train()  # the user's model was training, with trainable parameters
    for p in module.parameters():
        p.requires_grad_(True)
    flags = {"fail": False}

    def fail_in_forward(m, inputs, output):
        if flags["fail"]:
            raise Boom("inside the forward")

    mine = module.conv4.register_forward_hook(fail_in_forward)
    baseline = _hook_count(module)
    with pytest.raises(Boom):
        with Engine(bundle) as engine:
            engine.run(chelsea, ViewRequest(algorithms=ALL))
            assert _hook_count(engine.prepared) > baseline  # the engine's capture hooks are in place
            assert not module.training
            assert not any(p.requires_grad for p in module.parameters())
            flags["fail"] = True
            engine.run(chelsea, ViewRequest(algorithms=ALL))
    assert _hook_count(module) == baseline
    assert _mode_stack_depth() == 0  # the ReLU rule mode is not left active
    assert module.training
    assert all(p.requires_grad for p in module.parameters())
    mine.remove()
    # the model still trains normally: no guided rule left behind
    x = torch.randn(2, 3, 32, 32)
    module.eval()
    loss = module(x).sum()
    loss.backward()
    assert all(p.grad is not None for p in module.parameters())


def test_failed_run_keeps_the_engine_usable(chelsea):
    module = seeded(MixedReLUNet)
    flags = {}

    def fail_once(m, inputs, output):
        if flags.pop("fail", False):
            raise Boom("once")

    handle = module.conv2.register_forward_hook(fail_once)
    with Engine(tiny_bundle(module)) as engine:
        flags["fail"] = True
        with pytest.raises(Boom):
            engine.run(chelsea, ViewRequest(algorithms=ALL))
        res = engine.run(chelsea, ViewRequest(algorithms=ALL))
        assert set(res.maps) == set(ALL)
    handle.remove()


def test_close_is_idempotent_and_closed_engine_refuses(chelsea):
    module = seeded(MixedReLUNet)
    engine = Engine(tiny_bundle(module))
    engine.run(chelsea)
    engine.close()
    engine.close()
    assert _hook_count(module) == 0
    with pytest.raises(RuntimeError):
        engine.run(chelsea)


@pytest.fixture()
def one_thread():
    """Tiny ops on a busy 2-core machine mostly wait on OpenMP barriers: one thread is faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_two_hundred_frames_leave_memory_flat(chelsea, coffee, one_thread):
    bundle = tiny_bundle(seeded(MixedReLUNet), size=64)
    frames = [chelsea, coffee]
    with Engine(bundle) as engine:
        req = ViewRequest(algorithms=ALL)
        for i in range(20):
            engine.run(frames[i % 2], req)
        gc.collect()
        start = psutil.Process().memory_info().rss
        for i in range(200):
            res = engine.run(frames[i % 2], req)
        gc.collect()
        end = psutil.Process().memory_info().rss
        assert engine._capture.outputs == {}  # no frame's tensors (or graph) kept
    assert res.maps["gradcam"].image.dtype == np.uint8
    assert end - start < 40 * 2**20, f"RSS grew by {(end - start) / 2**20:.1f} MiB over 200 frames"
