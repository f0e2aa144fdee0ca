"""FSDP on CPU: two gloo processes shard the models the recipes train with the wrap policy of
`configs/trainer/fsdp.yaml` (`use_orig_params`, FULL_SHARD), and take optimizer steps under each partial-tuning
mode. Lightning's FSDPStrategy refuses a CPU accelerator, so this drives torch's FSDP directly with the strategy's
own settings; the GPU check script (`benchmarks/gpu_check.sh`) runs the same recipes through `trainer=fsdp`.

It caught, on CPU, the error first seen on a GPU: an in-place write to a parameter in the forward (the loss's
temperature clamp) is refused once FSDP makes the parameter a view of its flat buffer."""
import json
import os
import socket

import pytest
import torch

CASES = [  # (model, tuning mode, attention, mask ratio)
    ("dual", "last_k", "joint", 0.75),        # stage 2: the last layers of a 75%-masked LongViViT
    ("dual", "full", "joint", 0.0),           # stage 1
    ("dual", "lora", "factorized", 0.5),
    ("dual", "adapters", "joint", 0.75),
    ("v2t", "connector", "joint", 0.3),       # video-to-text: frozen encoder + frozen LM, trained connector
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _policy_and_settings():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from evals import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["trainer=fsdp"])
    strategy = instantiate(cfg.trainer.strategy)
    kw = strategy.kwargs
    return kw["auto_wrap_policy"], {"use_orig_params": kw["use_orig_params"],
                                    "sharding_strategy": strategy.sharding_strategy}


class _Step(torch.nn.Module):
    """The root FSDP unit, as Lightning's strategy makes the LightningModule: the step runs inside its forward."""

    def __init__(self, kind: str, model: torch.nn.Module, mask: float):
        super().__init__()
        self.kind, self.model, self.mask = kind, model, mask

    def forward(self, batch: dict, g: torch.Generator) -> torch.Tensor:
        if self.kind == "dual":
            e = self.model.video(batch["video"], mask_ratio=self.mask, generator=g).embedding
            return self.model.loss(e, self.model.encode_text(batch["ids"], batch["am"]))
        return self.model(batch["video"], input_ids=batch["ids"], attention_mask=batch["am"], labels=batch["labels"],
                          generator=g).loss


def _build(kind, mode, attention, mask, dirs):
    from longvid.model.dual import DualEncoder
    from longvid.model.v2t import V2TConfig, VideoToText

    torch.manual_seed(0)
    if kind == "v2t":
        return VideoToText(V2TConfig(encoder_path=dirs["enc"], lm_path=dirs["lm"], latents=4, resampler_depth=1,
                                     resampler_heads=2, xattn_heads=2, every=1, mask_ratio=mask))
    from longvid.model.dual import DualConfig
    from longvid.model.peft import apply_tuning

    m = DualEncoder(DualConfig.from_dict({**dirs["dual_cfg"], "encoder": {**dirs["dual_cfg"]["encoder"],
                                                                          "attention": attention}}))
    apply_tuning(m.vivit, mode=mode, k=1, adapter_dim=8, lora_rank=4)
    return m


def _worker(rank: int, world: int, port: int, dirs: dict, out: str) -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    policy, settings = _policy_and_settings()
    lines = []
    for kind, mode, attention, mask in CASES:
        model = _build(kind, mode, attention, mask, dirs)
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        trainable = {k for k, v in model.named_parameters() if v.requires_grad}
        step = FSDP(_Step(kind, model, mask), auto_wrap_policy=policy, device_id=torch.device("cpu"), **settings)
        opt = torch.optim.AdamW([p for p in step.parameters() if p.requires_grad], lr=1e-2)
        g = torch.Generator().manual_seed(rank)
        ids = torch.randint(4, 90, (2, 6), generator=g)
        batch = {"video": torch.randn(2, 3, 8, 32, 32, generator=g), "ids": ids, "am": torch.ones_like(ids),
                 "labels": ids}
        losses = []
        for i in range(2):
            loss = step(batch, torch.Generator().manual_seed(100 * rank + i))
            loss.backward()
            opt.step()
            opt.zero_grad()
            if kind == "dual":
                model.loss.clamp_()
            losses.append(float(loss.detach()))
        with FSDP.summon_full_params(step):
            after = {k.replace("_fsdp_wrapped_module.", ""): v.detach().clone() for k, v in model.named_parameters()}
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        lines.append(json.dumps({"case": [kind, mode, attention], "losses": losses, "trainable": len(trainable),
                                 "changed_trainable": len(changed & trainable),
                                 "changed_frozen": len(changed - trainable)}))
    if rank == 0:
        with open(out, "w") as f:
            f.write("\n".join(lines))
    dist.destroy_process_group()


@pytest.mark.slow
def test_fsdp_shards_every_recipe_and_tuning_mode_on_cpu(tmp_path):
    import math

    import torch.multiprocessing as mp
    from transformers import LlamaConfig, LlamaForCausalLM

    from longvid.model.dual import DualConfig, DualEncoder
    from tests.unit.test_v2t import char_tokenizer

    dual_cfg = {"encoder": dict(image_size=32, patch_size=16, tubelet_frames=2, num_frames=8, width=32, depth=2,
                                heads=2, mlp_dim=64, embed_dim=16),
                "text": dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             embed_dim=16), "vocab_size": 100}
    DualEncoder(DualConfig.from_dict(dual_cfg)).save_pretrained(tmp_path / "enc")
    LlamaForCausalLM(LlamaConfig(hidden_size=128, num_attention_heads=2, num_key_value_heads=2, num_hidden_layers=2,
                                 intermediate_size=256, vocab_size=128, max_position_embeddings=64,
                                 bos_token_id=1, eos_token_id=2, pad_token_id=0)).save_pretrained(tmp_path / "lm")
    char_tokenizer().save_pretrained(tmp_path / "lm")
    dirs = {"enc": str(tmp_path / "enc"), "lm": str(tmp_path / "lm"), "dual_cfg": dual_cfg}
    out = tmp_path / "fsdp.txt"
    mp.spawn(_worker, args=(2, _free_port(), dirs, str(out)), nprocs=2)
    lines = out.read_text().splitlines()
    assert len(lines) == len(CASES)
    for r in map(json.loads, lines):
        assert all(math.isfinite(x) for x in r["losses"]), r
        assert r["changed_trainable"] == r["trainable"] > 0, r     # every trained tensor moved
        assert r["changed_frozen"] == 0, r                         # no frozen tensor did
