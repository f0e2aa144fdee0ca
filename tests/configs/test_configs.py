"""Every YAML under configs/ composes, and every benchmark/system config instantiates."""
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from evals import config_dir

CONFIGS = Path(config_dir())
GROUPS = sorted(p.name for p in CONFIGS.iterdir() if p.is_dir())


def options(group):
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize("name", ["compare", "score"])
def test_primary_configs_compose(name, tmp_path):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(name, overrides=[f"paths.root={tmp_path}"] + (["predictions=x"] if name == "score" else []))
    OmegaConf.resolve(cfg)


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes(group, option, tmp_path):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        if group in ("benchmark", "system"):
            cfg = compose("compare", overrides=[f"paths.root={tmp_path}", f"+{group}@probe={option}"])
            obj = instantiate(cfg.probe, **({"name": "probe"} if group == "system" else {}))
            assert obj is not None
        else:
            cfg = compose("compare", overrides=[f"paths.root={tmp_path}", f"{group}={option}"])
        OmegaConf.resolve(cfg)


def test_synthetic_benchmark_configs_share_the_generator(tmp_path):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("compare", overrides=[f"paths.root={tmp_path}", "synthetic.n_test=3"])
    a = instantiate(cfg.benchmarks.synthetic_summary)
    b = instantiate(cfg.benchmarks.synthetic_qa)
    assert a.config == b.config and a.config.n_test == 3
