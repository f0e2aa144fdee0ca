"""Every YAML under configs/ composes, and every component config instantiates (at tiny sizes)."""
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from evals import config_dir
from longvid.train import register_resolvers

CONFIGS = Path(config_dir())
PRIMARY = {"benchmark": "compare", "system": "compare", "compare": "compare", "paths": "compare",
           "video": "compare", "synthetic": "compare", "model": "train", "data": "train", "trainer": "train",
           "experiment": "train", "lm": "train_v2t", "experiment_v2t": "train_v2t", "captioner": "compare",
           "llm": "compare", "logger": "train"}
TINY_SYN = ["synthetic.n_train=3", "synthetic.n_val=2", "synthetic.n_test=2", "synthetic.max_duration=20"]


def options(group):
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def test_every_group_is_covered():
    assert set(PRIMARY) == {p.name for p in CONFIGS.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}


def fill_missing(node, tmp_path) -> None:
    """Give every mandatory (???) value, at any depth, a path under tmp_path."""
    for key in list(node):
        if OmegaConf.is_missing(node, key):
            node[key] = str(tmp_path / str(key))
        elif OmegaConf.is_dict(node[key]):
            fill_missing(node[key], tmp_path)


def load(primary, overrides):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(primary, overrides=overrides)


@pytest.mark.parametrize("name", ["compare", "score", "train", "retrieval", "train_v2t", "pipeline"])
def test_primary_configs_compose(name, tmp_path):
    cfg = load(name, [f"paths.root={tmp_path}", *TINY_SYN] + {"score": ["predictions=x"], "retrieval": ["checkpoint=x"],
                                                                "train_v2t": ["encoder_path=x"]}.get(name, []))
    OmegaConf.resolve(cfg)


@pytest.mark.parametrize("group,option", [(g, o) for g in sorted(PRIMARY) for o in options(g)])
def test_every_group_option_composes_and_instantiates(group, option, tmp_path):
    base = [f"paths.root={tmp_path}", *TINY_SYN]
    if group in ("benchmark", "system"):
        cfg = load("compare", base + [f"+{group}@probe={option}"])
        fill_missing(cfg.probe, tmp_path)             # e.g. a system's checkpoint (loaded on prepare / predict)
        assert instantiate(cfg.probe, **({"name": "probe"} if group == "system" else {})) is not None
        return
    if group in ("captioner", "llm"):   # built, not run: models load / servers start on first use
        cfg = load("compare", base + [f"{group}={option}"])
        node = cfg[group]
        fill_missing(node, tmp_path)
        if group == "captioner" and option == "hf":
            from tests.tiny_captioners import save_tiny_git

            node.path = save_tiny_git(tmp_path / "git")
        obj = instantiate(node)
        assert callable(getattr(obj, "caption" if group == "captioner" else "chat"))
        return
    cfg = load(PRIMARY[group], base + [f"{group}={option}"] + (["encoder_path=x"] if PRIMARY[group] == "train_v2t"
                                                                else []))
    OmegaConf.resolve(cfg)
    if group == "model":
        from longvid.model.dual import DualConfig, DualEncoder

        d = OmegaConf.to_container(cfg.model)
        d["encoder"].update(depth=1)
        d["text"].update(num_hidden_layers=1)
        assert DualEncoder(DualConfig.from_dict(d)) is not None
    elif group == "data":
        if "synthetic" in option:
            dm = instantiate(cfg.data)
            dm.setup("fit")
            assert len(dm.train_set) > 0
    elif group == "experiment_v2t":
        dm = instantiate(cfg.data, num_frames=4, size=32, _recursive_=False)
        dm.setup("fit")
        assert len(dm.train_set) > 0 and dm.task == cfg.task
    elif group == "lm" and option == "tiny":
        from transformers import AutoModelForCausalLM

        lm = AutoModelForCausalLM.from_pretrained(instantiate(cfg.lm, pretrain_steps=0, progress=False))
        assert lm.config.hidden_size // lm.config.num_attention_heads == 64
    elif group == "trainer" and option in ("cpu", "ddp_cpu"):
        assert instantiate(cfg.trainer, logger=False, enable_checkpointing=False) is not None
    elif group == "trainer" and option == "fsdp":  # the strategy object builds; the Trainer needs a GPU
        from lightning.pytorch.strategies import FSDPStrategy
        from longvid.model.layers import Block

        from torch import nn
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        strategy = instantiate(cfg.trainer.strategy)
        policy = strategy.kwargs["auto_wrap_policy"]      # a policy object (a list was called by torch and failed)
        assert isinstance(strategy, FSDPStrategy) and isinstance(policy, ModuleWrapPolicy)
        model = nn.Sequential(Block(8, 2, 16), nn.Linear(8, 8), Block(8, 2, 16, factorized=True))
        units = policy._run_policy(model, set(), {})    # what FSDP wraps below the root: every block, nothing else
        assert sum(isinstance(m, Block) for m in units) == 2 and len(units) == 2
    elif group == "logger":      # CSV here; TensorBoard and W&B need their packages: a clear error without them
        import importlib.util

        package = {"csv": None, "tensorboard": "tensorboard", "wandb": "wandb"}[option]
        if package is None or importlib.util.find_spec(package):
            assert instantiate(cfg.logger, save_dir=str(tmp_path)) is not None
        else:
            from hydra.errors import InstantiationException

            with pytest.raises(InstantiationException, match=f"ModuleNotFoundError.*{package}"):
                instantiate(cfg.logger, save_dir=str(tmp_path))
    elif group == "trainer" and option == "gpu":  # its schedule on any data size (run here on the CPU)
        from lightning.pytorch.demos.boring_classes import BoringModel

        assert cfg.trainer.val_check_interval == 1000 and cfg.trainer.check_val_every_n_epoch is None
        trainer = instantiate(cfg.trainer, accelerator="cpu", devices=1, strategy="auto", precision="32-true",
                              max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False)
        trainer.fit(BoringModel())                     # 64 batches per epoch < 1000: Lightning refused this before
        assert trainer.global_step == 3


def test_synthetic_benchmark_configs_share_the_generator(tmp_path):
    cfg = load("compare", [f"paths.root={tmp_path}", "synthetic.n_test=3"])
    a = instantiate(cfg.benchmarks.synthetic_summary)
    b = instantiate(cfg.benchmarks.synthetic_qa)
    assert a.config == b.config and a.config.n_test == 3
