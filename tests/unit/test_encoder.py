"""Video encoder: shapes, masking invariants, attention equivalences, factorized gate, inflation."""
import pytest
import torch

from longvid.model.encoder import (EncoderConfig, ImageViT, VideoEncoder, inflate_patch_kernel,
                                   random_keep)
from longvid.model.layers import Attention, Block, Groups, reference_attention

TINY = dict(image_size=32, patch_size=8, tubelet_frames=2, num_frames=8, width=32, depth=2, heads=2,
            mlp_dim=64, embed_dim=24)


def video(B=2, T=8, size=32, seed=0):
    return torch.randn(B, 3, T, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("attention", ["joint", "factorized"])
def test_shapes(attention):
    enc = VideoEncoder(EncoderConfig(**TINY, attention=attention)).eval()
    out = enc(video())
    assert out.tokens.shape == (2, 4 * 16, 32) and out.embedding.shape == (2, 24) and out.grid == (4, 16)
    masked = enc(video(), mask_ratio=0.75, generator=torch.Generator().manual_seed(0))
    assert masked.tokens.shape == (2, 16, 32)
    assert enc.encode_image(torch.randn(3, 3, 32, 32)).embedding.shape == (3, 24)


def test_random_keep_invariants():
    g = lambda s: torch.Generator().manual_seed(s)
    idx = random_keep(4, 8, 16, 0.75, g(1))
    assert idx.shape == (4, 32)                                  # exact count kept
    assert all(len(set(r.tolist())) == 32 for r in idx)          # no repeats
    assert torch.equal(idx, random_keep(4, 8, 16, 0.75, g(1)))   # seed-reproducible
    assert not torch.equal(idx[0], idx[1])                       # per-sample masks
    assert torch.equal(random_keep(2, 4, 4, 0.0, g(0)), torch.arange(16).expand(2, -1))
    tube = random_keep(2, 4, 16, 0.5, g(0), tube=True)
    s = tube % 16
    for b in range(2):                                           # same spatial set at every time step
        sets = [set(s[b][tube[b] // 16 == t].tolist()) for t in range(4)]
        assert all(x == sets[0] for x in sets) and len(sets[0]) == 8
    with pytest.raises(ValueError):
        random_keep(1, 2, 2, 1.0)


def test_masked_tokens_never_reach_attention():
    """Changing the pixels of masked tubelets changes nothing; changing a kept one does."""
    torch.manual_seed(0)
    enc = VideoEncoder(EncoderConfig(**TINY)).eval()
    v = video(B=1)
    keep = random_keep(1, 4, 16, 0.75, torch.Generator().manual_seed(5))[0]
    masked_tok = next(i for i in range(64) if i not in set(keep.tolist()))
    t, n = divmod(masked_tok, 16)
    r, c = divmod(n, 4)
    v2 = v.clone()
    v2[:, :, 2 * t:2 * t + 2, 8 * r:8 * r + 8, 8 * c:8 * c + 8] += 5.0
    run = lambda x: enc(x, mask_ratio=0.75, generator=torch.Generator().manual_seed(5)).embedding
    assert torch.allclose(run(v), run(v2), atol=1e-6)
    t, n = divmod(int(keep[0]), 16)
    r, c = divmod(n, 4)
    v3 = v.clone()
    v3[:, :, 2 * t:2 * t + 2, 8 * r:8 * r + 8, 8 * c:8 * c + 8] += 5.0
    assert not torch.allclose(run(v), run(v3), atol=1e-4)


def test_fused_attention_equals_reference():
    torch.manual_seed(0)
    attn = Attention(32, 4)
    x = torch.randn(2, 10, 32)
    assert torch.allclose(attn(x), reference_attention(attn, x), atol=1e-5)


def test_packed_groups_attention_equals_the_masked_reference():
    torch.manual_seed(0)
    attn = Attention(32, 4)
    x = torch.randn(2, 10, 32, requires_grad=True)
    ids = torch.tensor([[0, 2, 2, 0, 2, 0, 2, 2, 0, 2], [1, 1, 1, 1, 1, 1, 1, 1, 1, 0]])  # unequal, empty groups
    groups = Groups(ids, num_groups=3)
    assert groups.rows == 4 and groups.width == 9 and groups.mask is not None
    out = attn(x, groups=groups)
    assert torch.allclose(out, reference_attention(attn, x, ids), atol=1e-5)
    out.square().sum().backward()                     # padding slots and empty groups keep gradients finite
    assert all(torch.isfinite(p.grad).all() for p in [x, *attn.parameters()])
    equal = Groups(torch.arange(12).remainder(3).expand(2, -1), num_groups=3)
    assert equal.mask is None and (equal.rows, equal.width) == (6, 4)


def test_factorized_grid_and_masked_paths_agree():
    torch.manual_seed(0)
    blk = Block(32, 2, 64, factorized=True).eval()
    with torch.no_grad():
        blk.gate.fill_(0.7)
    T, N = 3, 4
    x = torch.randn(2, T * N, 32)
    ids = torch.arange(T * N).expand(2, -1)
    groups = (Groups(ids // N, T), Groups(ids % N, N))
    assert torch.allclose(blk(x, grid=(T, N)), blk(x, groups=groups), atol=1e-5)


def test_gate_zero_factorized_block_equals_the_block_it_wraps():
    torch.manual_seed(0)
    fact = Block(32, 2, 64, factorized=True).eval()
    plain = Block(32, 2, 64).eval()
    plain.load_state_dict({k: v for k, v in fact.state_dict().items()
                           if not k.startswith(("attn_t", "norm_t", "gate"))})
    T, N = 3, 4
    x = torch.randn(2, T * N, 32)
    spatial = torch.cat([plain(x[:, t * N:(t + 1) * N]) for t in range(T)], 1)  # spatial-only path
    assert torch.allclose(fact(x, grid=(T, N)), spatial, atol=1e-5)
    assert torch.equal(fact.attn_t.qkv.weight, fact.attn.qkv.weight)        # temporal init from spatial


def test_positional_embedding_extends_to_more_frames():
    enc = VideoEncoder(EncoderConfig(**TINY)).eval()
    with torch.no_grad():
        enc.pos_time.copy_(torch.linspace(0, 1, 4)[:, None].expand(-1, 32))
    ext = enc.time_positions(16)
    assert ext.shape == (16, 32)
    assert torch.allclose(ext[0], enc.pos_time[0]) and torch.allclose(ext[-1], enc.pos_time[-1])
    assert torch.all(ext[1:, 0] >= ext[:-1, 0])
    assert enc(video(T=32)).tokens.shape == (2, 16 * 16, 32)   # 32 frames on a model trained for 8


def test_static_video_with_inflated_kernel_equals_image_embedding():
    torch.manual_seed(0)
    enc = VideoEncoder(EncoderConfig(**TINY)).eval()
    with torch.no_grad():
        enc.tubelet.weight.copy_(inflate_patch_kernel(enc.patch.weight, 2))
        enc.tubelet.bias.copy_(enc.patch.bias)
        enc.pos_time.zero_()
    img = torch.randn(2, 3, 32, 32)
    static = img[:, :, None].expand(-1, -1, 8, -1, -1)
    assert torch.allclose(enc(static).embedding, enc.encode_image(img).embedding, atol=1e-5)


@pytest.mark.parametrize("fusion", ["average", "attention"])
def test_imagevit(fusion):
    m = ImageViT(EncoderConfig(**TINY), fusion).eval()
    out = m(video())
    assert out.embedding.shape == (2, 24) and out.tokens.shape == (2, 8 * 16, 32)
    # frame order does not matter for average fusion (late fusion, no temporal modelling)
    if fusion == "average":
        assert torch.allclose(m(video().flip(2)).embedding, out.embedding, atol=1e-5)


@pytest.mark.parametrize("act", ["gelu", "quick_gelu"])
def test_mlp_recomputing_its_activation_gives_the_same_gradients(act):
    from longvid.model.layers import ACTIVATIONS, Mlp

    torch.manual_seed(0)
    mlp = Mlp(8, 16, act=act).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    out = mlp(x)                                   # the recomputing path (dropout 0, plain Linear)
    ref = mlp.fc2(ACTIVATIONS[act](mlp.fc1(x)))    # the plain composition
    assert torch.allclose(out, ref)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, *mlp.parameters()], g)
    ref_grads = torch.autograd.grad(ref, [x, *mlp.parameters()], g)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-12)
    frozen = Mlp(8, 16, act=act).double().requires_grad_(False)
    y = frozen(x)
    (gx,) = torch.autograd.grad(y, x, g)           # frozen weights: input gradient only
    assert torch.allclose(gx, torch.autograd.grad(frozen.fc2(ACTIVATIONS[act](frozen.fc1(x))), x, g)[0])


def test_mlp_recomputes_its_activation_under_autocast_too():
    """Under bf16 autocast (the GPU recipe) the MLP still keeps only its hidden input for backward: the same
    output and gradients as autocast's own composition, and no saved activation of the MLP width besides h."""
    from longvid.model.layers import Mlp

    torch.manual_seed(0)
    mlp = Mlp(16, 64)
    x = torch.randn(2, 6, 16, requires_grad=True)
    g = torch.randn(2, 6, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mlp(x)
        ref = mlp.fc2(torch.nn.functional.gelu(mlp.fc1(x)))
    assert out.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref)
    grads = torch.autograd.grad(out, [x, *mlp.parameters()], g)
    ref_grads = torch.autograd.grad(ref, [x, *mlp.parameters()], g)
    for a, b in zip(grads, ref_grads):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)

    from longvid.encoder_memory import _saved_bytes

    exclude = {p.untyped_storage().data_ptr() for p in (x, *mlp.parameters())}

    def saved(y):                           # bytes the graph keeps for backward, parameters and input excluded
        return sum(_saved_bytes(y.grad_fn, exclude).values())

    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, composed = saved(mlp(x)), saved(mlp.fc2(torch.nn.functional.gelu(mlp.fc1(x))))
    assert composed - ours == 2 * 6 * 64 * 2       # one bf16 tensor of the hidden's size less: gelu(h)


def test_no_zero_dim_parameters_and_old_checkpoints_load():
    """FSDP refuses 0-dim parameters: the factorized gate, the loss's log-temperature and the video-to-text gates
    are 1-element tensors; a state dict saved with them 0-dim (before) still loads, with the same values."""
    from longvid.losses import ContrastiveLoss
    from longvid.model.dual import load_state_flexible
    from longvid.model.layers import Block
    from longvid.model.v2t import GatedCrossAttention

    for module in (Block(8, 2, 16, factorized=True), ContrastiveLoss(), ContrastiveLoss(learnable=False),
                   GatedCrossAttention(8, heads=2)):
        state = module.state_dict()
        scalars = [k for k, v in state.items() if v.numel() == 1]
        assert scalars and all(p.dim() > 0 for p in module.parameters())
        old = {k: (v.reshape(()) + 0.25 if k in scalars else v) for k, v in state.items()}   # as saved before
        for load in (module.load_state_dict, lambda sd: load_state_flexible(module, sd)):   # both load paths
            module.load_state_dict(state)
            load(old)
            assert all(float(module.state_dict()[k]) == float(old[k]) and module.state_dict()[k].shape == (1,)
                       for k in scalars)
