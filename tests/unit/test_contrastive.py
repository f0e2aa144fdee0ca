"""longvid.losses.ContrastiveLoss: single-process properties and the 2-process (gloo) local == global check."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from longvid.losses import ContrastiveLoss, all_gather_with_grad  # noqa: E402

B, D = 6, 16  # per-rank batch, embedding size


def _reference(video, text, scale):
    """CLIP's pseudo-code, written out with explicit loops over rows."""
    v = video / video.norm(dim=1, keepdim=True)
    t = text / text.norm(dim=1, keepdim=True)
    sim = scale * v @ t.T  # (N, N)
    n = sim.shape[0]
    v2t = sum(-(sim[i, i] - torch.logsumexp(sim[i, :], 0)) for i in range(n)) / n
    t2v = sum(-(sim[i, i] - torch.logsumexp(sim[:, i], 0)) for i in range(n)) / n
    return (v2t + t2v) / 2


def _pair(seed=0, n=8, d=D):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)


def test_matches_reference_and_defaults():
    loss_fn = ContrastiveLoss().double()
    v, t = _pair()
    assert math.isclose(loss_fn.temperature, 0.07, rel_tol=1e-6)
    scale = loss_fn.logit_scale.detach()  # float32 log(1/0.07) cast to float64
    torch.testing.assert_close(loss_fn(v, t), _reference(v, t, scale), rtol=0, atol=1e-10)
    torch.testing.assert_close(loss_fn(v, t), _reference(v, t, 1 / 0.07), rtol=0, atol=1e-5)
    assert not dist.is_initialized()


def test_symmetric_in_video_and_text():
    loss_fn = ContrastiveLoss().double()
    v, t = _pair(1)
    torch.testing.assert_close(loss_fn(v, t), loss_fn(t, v), rtol=0, atol=1e-12)
    out = loss_fn.logits(v, t)
    torch.testing.assert_close(out.video_to_text, out.text_to_video.T)  # single process: square, transposed
    assert out.targets.tolist() == list(range(8))


def test_invariant_to_embedding_norm():
    loss_fn = ContrastiveLoss().double()
    v, t = _pair(2)
    torch.testing.assert_close(loss_fn(v, t), loss_fn(3.0 * v, 0.5 * t))


def test_perfectly_aligned_low_temperature_is_near_zero():
    loss_fn = ContrastiveLoss(init_temperature=0.01)
    e = torch.eye(8, D)  # orthogonal unit rows: positive cosine 1, negatives 0
    assert loss_fn(e, e.clone()).item() < 1e-6
    assert loss_fn(e, e.roll(1, 0)).item() > 50  # every positive misplaced


def test_temperature_is_learnable():
    loss_fn = ContrastiveLoss()
    v, t = _pair(3)
    loss_fn(v.float(), t.float()).backward()
    assert loss_fn.log_scale.requires_grad and loss_fn.log_scale.grad is not None
    assert loss_fn.log_scale.grad.abs().item() > 0
    frozen = ContrastiveLoss(learnable=False)
    assert not any(True for _ in frozen.parameters()) and "log_scale" in dict(frozen.named_buffers())


def test_scale_is_clamped_and_keeps_its_gradient():
    loss_fn = ContrastiveLoss(max_scale=100.0)
    assert math.isclose(ContrastiveLoss(init_temperature=1e-4).logit_scale.item(), 100.0, rel_tol=1e-6)
    with torch.no_grad():
        loss_fn.log_scale.fill_(math.log(1000.0))
    v, t = _pair(4)
    loss = loss_fn(v.float(), t.float())
    assert math.isclose(loss_fn.logit_scale.item(), 100.0, rel_tol=1e-6)     # the forward clamps a copy
    assert math.isclose(loss_fn.log_scale.item(), math.log(1000.0), rel_tol=1e-6)   # never the parameter
    torch.testing.assert_close(loss, _reference(v.float(), t.float(), 100.0), rtol=1e-5, atol=1e-5)
    loss_fn.clamp_()                                                   # after the optimizer step (CLIP)
    assert math.isclose(loss_fn.log_scale.item(), math.log(100.0), rel_tol=1e-6)
    loss = loss_fn(v.float(), t.float())
    loss.backward()
    assert loss_fn.log_scale.grad.abs().item() > 0  # at the bound, not stuck there


def test_gather_is_identity_without_distributed():
    x = torch.randn(3, 4, requires_grad=True)
    assert all_gather_with_grad(x) is x


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        ContrastiveLoss()(torch.randn(4, 8), torch.randn(5, 8))


# --------------------------------------------------------------------------- 2 processes, gloo, CPU


def _model_and_batch(world: int):
    """Seeded video/text projections, loss and a (world*B)-row batch, identical in every process."""
    torch.manual_seed(0)
    video_proj = torch.nn.Linear(10, D, dtype=torch.float64)
    text_proj = torch.nn.Linear(12, D, dtype=torch.float64)
    loss_fn = ContrastiveLoss(init_temperature=0.2).double()
    g = torch.Generator().manual_seed(1)
    xv = torch.randn(world * B, 10, generator=g, dtype=torch.float64)
    xt = torch.randn(world * B, 12, generator=g, dtype=torch.float64)
    return torch.nn.ModuleDict({"v": video_proj, "t": text_proj, "loss": loss_fn}), xv, xt


def _grads(model) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in model.named_parameters()}


def _worker(rank: int, world: int, init_method: str, out_dir: str) -> None:
    from datetime import timedelta

    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world,
                            timeout=timedelta(seconds=30))
    try:
        model, xv, xt = _model_and_batch(world)
        rows = slice(rank * B, (rank + 1) * B)
        loss = model["loss"](model["v"](xv[rows]), model["t"](xt[rows]))  # local loss
        loss.backward()
        for p in model.parameters():  # DDP: average gradients across ranks
            dist.all_reduce(p.grad)
            p.grad /= world
        targets = model["loss"].logits(model["v"](xv[rows]), model["t"](xt[rows])).targets
        torch.save({"loss": loss.detach(), "grads": _grads(model), "targets": targets},
                   Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_local_loss_equals_global(tmp_path):
    world = 2
    ctx = mp.start_processes(_worker, args=(world, f"file://{tmp_path}/rendezvous", str(tmp_path)),
                             nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + 50
    try:
        while not ctx.join(timeout=1):  # raises if a worker failed
            assert time.monotonic() < deadline, "distributed workers timed out"
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()
                p.join(5)

    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]
    model, xv, xt = _model_and_batch(world)
    global_loss = model["loss"](model["v"](xv), model["t"](xt))
    global_loss.backward()
    expected = _grads(model)

    mean_local = sum(r["loss"] for r in results) / world
    assert abs(mean_local.item() - global_loss.item()) < 1e-6
    assert results[0]["loss"].item() != pytest.approx(results[1]["loss"].item())  # genuinely different halves
    for r, res in enumerate(results):
        assert res["targets"].tolist() == list(range(r * B, (r + 1) * B))
        assert res["grads"].keys() == expected.keys()
        for k, g in expected.items():
            torch.testing.assert_close(res["grads"][k], g, rtol=0, atol=1e-5, msg=f"rank {r}: {k}")
    # and the gradient is not trivially zero
    assert all(g.abs().max() > 1e-4 for g in expected.values())
    # the test has teeth: without the gather, the local losses would not average to the global loss
    with torch.no_grad():
        local_only = sum(model["loss"](model["v"](xv[i * B:(i + 1) * B]), model["t"](xt[i * B:(i + 1) * B]))
                         for i in range(world)) / world
    assert abs(local_only.item() - global_loss.item()) > 1e-3


def test_batch_size_is_global_and_divided_across_devices():
    """The negatives of a contrastive step stay the same as devices change: each device loads its share of the
    configured batch, and a batch that does not divide is refused naming the key."""
    from types import SimpleNamespace

    from longvid.lit.contrastive import PairsDataModule

    dm = PairsDataModule(train="unused.jsonl", batch_size=16)
    assert dm.per_device(16, "data.batch_size") == 16                 # no trainer: one device
    dm.trainer = SimpleNamespace(world_size=4)
    assert dm.per_device(16, "data.batch_size") == 4
    dm.trainer = SimpleNamespace(world_size=3)
    with pytest.raises(ValueError, match=r"data.batch_size=16 is the global batch size .* 3 devices"):
        dm.per_device(16, "data.batch_size")
