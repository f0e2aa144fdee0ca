"""Flamingo-style video-to-text model (the paper's recipe step 3).

A frozen video encoder (ViViT or ImageViT tower of a saved `DualEncoder`) -> tokens mean-pooled per spatial
position over time, or over each of `time_bins` equal spans (a fixed count bins x N, whatever the number of
frames) -> a randomly initialised Perceiver resampler -> `latents` visual tokens, read by new tanh-gated
cross-attention layers inserted *before* the decoder layers of a frozen HF causal LM (Llama / Qwen2 / SmolLM2 families: `lm.model.layers`). The gates
start at 0, so at initialisation the LM's outputs are exactly unchanged. Only the connector (input
projection, resampler, gated layers) is trained, with the LM's own causal-LM loss on the answer tokens.

The visual latents of a call live in a small context object shared by the wrapped layers: they are computed
once per `forward` / `generate` / `score_options` call and stay fixed while the LM runs (including every
step of KV-cached generation; for beam search they are repeated to batch * num_beams rows, in the order HF
expands its inputs).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from longvid.model.layers import CrossAttention, add_scalar

CONFIG, WEIGHTS = "v2t_config.json", "v2t.safetensors"


@dataclass
class V2TConfig:
    encoder_path: str | None = None  # dir of a saved DualEncoder; its video tower (ViViT / ImageViT) is used
    lm_path: str | None = None       # dir of a local HF causal LM (Llama / Qwen2 / SmolLM2 families)
    lm_dtype: str = "float32"        # dtype the frozen LM is loaded in ("bfloat16" halves its memory)
    visual_tokens: int = 0           # tokens after time pooling = the encoder's spatial positions N (0: take N
                                     # from the encoder; otherwise checked against it)
    time_bins: int = 1               # pool over this many equal spans of the video (1: over all of it), so the
                                     # resampler sees time_bins * N tokens with learned span embeddings: order
    latents: int = 64                # resampler output tokens (what the LM cross-attends to)
    resampler_depth: int = 2         # Perceiver resampler layers
    resampler_heads: int = 8         # must divide the LM width
    resampler_ff_mult: int = 4       # resampler FFN hidden = ff_mult * LM width
    xattn_heads: int = 8             # gated cross-attention heads (must divide the LM width)
    xattn_ff_mult: int = 4           # gated FFN hidden = ff_mult * LM width
    every: int = 1                   # a gated cross-attention before every `every`-th LM layer (1 = all)
    mask_ratio: float = 0.0          # random input-token masking in the encoder (ViViT; ImageViT ignores it);
                                     # the paper uses 0.3 at train and inference (`generator=` for repeatable masks)


def time_pool(tokens: torch.Tensor, s_ids: torch.Tensor, n_space: int, t_ids: torch.Tensor | None = None,
              steps: int = 1, bins: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the (kept) tokens at each spatial position over time, or over each of `bins` equal spans of the
    encoder's `steps` time steps (`t_ids` needed then): token (t, s) goes to slot (t * bins // steps) * N + s.
    tokens (B, K, D), s_ids (B, K) -> pooled (B, bins * N, D) (zeros where no token was kept), valid (B, bins * N)."""
    B, K, D = tokens.shape
    slot = s_ids if bins == 1 else (t_ids * bins // steps) * n_space + s_ids                 # (B, K)
    n = bins * n_space
    sums = tokens.new_zeros(B, n, D).scatter_add_(1, slot[..., None].expand(-1, -1, D), tokens)
    counts = tokens.new_zeros(B, n).scatter_add_(1, slot, tokens.new_ones(B, K))              # (B, n)
    return sums / counts.clamp(min=1)[..., None], counts > 0


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    """Pre-norm GELU MLP (Flamingo's FFN)."""
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mult * dim, bias=False), nn.GELU(),
                         nn.Linear(mult * dim, dim, bias=False))


class PerceiverLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ff_mult: int):
        super().__init__()
        self.norm_x, self.norm_lat = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn, self.ff = CrossAttention(dim, heads), feed_forward(dim, ff_mult)

    def forward(self, x: torch.Tensor, lat: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, N, D) visual tokens, lat (B, M, D); latents attend to [visual tokens; latents]."""
        q = self.norm_lat(lat)
        kv = torch.cat([self.norm_x(x), q], 1)                                   # (B, N+M, D)
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(lat.shape[:2])], 1)            # (B, N+M)
        lat = lat + self.attn(q, kv, mask)
        return lat + self.ff(lat)


class PerceiverResampler(nn.Module):
    """Learned latents (random init) cross-attending to [visual tokens; latents], `depth` layers, each with an
    FFN (Flamingo). (B, N, D) [+ valid mask (B, N)] -> (B, latents, D)."""

    def __init__(self, dim: int, latents: int = 64, depth: int = 2, heads: int = 8, ff_mult: int = 4):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(latents, dim) * 0.02)           # (M, D)
        self.layers = nn.ModuleList(PerceiverLayer(dim, heads, ff_mult) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        lat = self.latents.expand(x.shape[0], -1, -1)                            # (B, M, D)
        for layer in self.layers:
            lat = layer(x, lat, mask)
        return self.norm(lat)


class GatedCrossAttention(nn.Module):
    """x + tanh(a) * xattn(LN(x), latents), then + tanh(b) * FFN(.); a = b = 0 at init (identity)."""

    def __init__(self, dim: int, heads: int = 8, ff_mult: int = 4):
        super().__init__()
        self.norm, self.attn, self.ff = nn.LayerNorm(dim), CrossAttention(dim, heads), feed_forward(dim, ff_mult)
        add_scalar(self, "attn_gate", 0.0)
        add_scalar(self, "ff_gate", 0.0)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) text hidden states, latents (B, M, D) -> (B, L, D)."""
        x = x + torch.tanh(self.attn_gate) * self.attn(self.norm(x), latents)
        return x + torch.tanh(self.ff_gate) * self.ff(x)


class VisualContext:
    """The visual latents of the current call, shared by all gated layers of one model (not a module)."""
    latents: torch.Tensor | None = None  # (B', M, D), B' = rows of the text batch


class GatedLayer(nn.Module):
    """Wraps one LM decoder layer: applies its gated cross-attention to the incoming hidden states with the
    current visual latents, then calls the original layer with all its args/kwargs unchanged. The
    cross-attention is owned (registered) by `VideoToText.xattn`, not by the LM, so the LM's state dict keeps
    only its own weights (under `.layer.`)."""

    def __init__(self, layer: nn.Module, xattn: GatedCrossAttention, ctx: VisualContext):
        super().__init__()
        self.layer = layer
        object.__setattr__(self, "xattn", xattn)   # not registered here (see docstring)
        object.__setattr__(self, "ctx", ctx)

    def forward(self, *args, **kwargs):
        args = list(args)
        hs = args[0] if args else kwargs["hidden_states"]                       # (B', L, D)
        lat = self.ctx.latents
        if lat is None:
            raise RuntimeError("no visual context: call the LM through VideoToText (forward / generate / "
                               "score_options) or inside `VideoToText.visual_context(latents)`")
        if lat.shape[0] != hs.shape[0]:
            raise RuntimeError(f"visual latents have {lat.shape[0]} rows but the text batch has {hs.shape[0]}")
        hs = self.xattn(hs.to(lat.dtype), lat).to(hs.dtype)
        if args:
            args[0] = hs
        else:
            kwargs["hidden_states"] = hs
        return self.layer(*args, **kwargs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "layer":
                raise
            return getattr(self.layer, name)     # e.g. `attention_type` read by some HF models


def decoder_layers(lm: nn.Module) -> nn.ModuleList:
    """The decoder layers of an HF causal LM of the Llama / Qwen2 / SmolLM2 families."""
    layers = getattr(getattr(lm, "model", None), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise TypeError(f"{type(lm).__name__}: expected decoder layers at `lm.model.layers` "
                        "(Llama / Qwen2 / SmolLM2-style causal LMs)")
    return layers


def load_video_encoder(path: str | Path) -> nn.Module:
    """The video tower of a saved `DualEncoder`."""
    from longvid.model.dual import DualEncoder

    return DualEncoder.from_pretrained(path).video


def load_lm(path: str | Path, dtype: str = "float32") -> nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype), local_files_only=True)


class VideoToText(nn.Module):
    """Frozen encoder + time pooling + resampler + frozen LM with gated cross-attention layers.

    `encoder` / `lm` may be passed in (else loaded from `cfg.encoder_path` / `cfg.lm_path`). Frozen parts keep
    `requires_grad=False` and stay in eval mode; the encoder runs under `no_grad`; the LM runs with autograd
    on (gradients must pass through it to the gated layers below) but accumulates no weight gradients."""

    def __init__(self, cfg: V2TConfig, encoder: nn.Module | None = None, lm: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        if encoder is None and cfg.encoder_path is None or lm is None and cfg.lm_path is None:
            raise ValueError("pass encoder / lm modules or set cfg.encoder_path / cfg.lm_path")
        self.encoder = encoder if encoder is not None else load_video_encoder(cfg.encoder_path)
        self.lm = lm if lm is not None else load_lm(cfg.lm_path, cfg.lm_dtype)
        layers = decoder_layers(self.lm)
        if cfg.every < 1:
            raise ValueError(f"every must be >= 1, got {cfg.every}")
        for p in [*self.encoder.parameters(), *self.lm.parameters()]:
            p.requires_grad_(False)
        ecfg = self.encoder.cfg
        self.n_space = ecfg.patches
        if cfg.visual_tokens and cfg.visual_tokens != self.n_space:
            raise ValueError(f"visual_tokens={cfg.visual_tokens} but the encoder has {self.n_space} spatial "
                             f"positions ({ecfg.image_size}px / {ecfg.patch_size}px patches)")
        D = self.lm.config.hidden_size
        self.in_norm, self.in_proj = nn.LayerNorm(ecfg.width), nn.Linear(ecfg.width, D)
        self.visual_pos = nn.Parameter(torch.zeros(self.n_space, D))             # (N, D) spatial positions
        if cfg.time_bins < 1:
            raise ValueError(f"time_bins must be >= 1, got {cfg.time_bins}")
        if cfg.time_bins > 1:                                                    # (bins, D) span positions
            self.visual_time = nn.Parameter(torch.randn(cfg.time_bins, D) * 0.02)
        self.resampler = PerceiverResampler(D, cfg.latents, cfg.resampler_depth, cfg.resampler_heads,
                                            cfg.resampler_ff_mult)
        self._ctx = VisualContext()
        self.xattn = nn.ModuleList()
        for i in range(0, len(layers), cfg.every):
            if isinstance(layers[i], GatedLayer):
                raise ValueError("this LM already carries gated cross-attention layers (another VideoToText)")
            self.xattn.append(GatedCrossAttention(D, cfg.xattn_heads, cfg.xattn_ff_mult))
            layers[i] = GatedLayer(layers[i], self.xattn[-1], self._ctx)
        self.train()

    def train(self, mode: bool = True) -> "VideoToText":
        super().train(mode)
        self.encoder.eval()
        self.lm.eval()
        return self

    # --- visual path -------------------------------------------------------------------------------------
    def encode(self, video: torch.Tensor, mask_ratio: float | None = None,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """video (B, C, T, H, W) -> time-pooled projected tokens (B, bins * N, D_lm) and valid mask (B, bins * N)."""
        ratio = self.cfg.mask_ratio if mask_ratio is None else mask_ratio
        bins = self.cfg.time_bins
        p = next(self.encoder.parameters())
        with torch.no_grad():
            video = video.to(p.device, p.dtype)
            out = self.encoder(video, mask_ratio=ratio, generator=generator) if ratio > 0 else self.encoder(video)
            steps = out.grid[0]
            if steps < bins:
                raise ValueError(f"time_bins={bins} but the encoder gives {steps} time steps")
            pooled, valid = time_pool(out.tokens, out.s_ids, self.n_space, out.t_ids, steps, bins)  # (B, bins*N, D_enc)
        pos = self.visual_pos if bins == 1 else \
            (self.visual_time[:, None] + self.visual_pos[None]).flatten(0, 1)    # (bins * N, D_lm) span + space
        return self.in_proj(self.in_norm(pooled)) + pos, valid                    # (B, bins * N, D_lm)

    def visual_latents(self, video: torch.Tensor, mask_ratio: float | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """video (B, C, T, H, W) -> resampled latents (B, latents, D_lm)."""
        x, valid = self.encode(video, mask_ratio, generator)
        return self.resampler(x, None if bool(valid.all()) else valid)

    @contextmanager
    def visual_context(self, latents: torch.Tensor):
        """Within the block, every gated layer reads `latents` (B', M, D); B' must match the text batch."""
        prev, self._ctx.latents = self._ctx.latents, latents
        try:
            yield
        finally:
            self._ctx.latents = prev

    # --- text ------------------------------------------------------------------------------------------
    def forward(self, video: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, mask_ratio: float | None = None,
                generator: torch.Generator | None = None, **lm_kwargs):
        """HF CausalLMOutputWithPast; `labels` (B, L) = -100 except on answer / caption tokens."""
        lat = self.visual_latents(video, mask_ratio, generator)
        with self.visual_context(lat):
            return self.lm(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **lm_kwargs)

    @torch.no_grad()
    def generate(self, video: torch.Tensor, prompt_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 max_new_tokens: int = 32, num_beams: int = 1, mask_ratio: float | None = None,
                 generator: torch.Generator | None = None, **gen_kwargs) -> torch.Tensor:
        """Greedy (default) or beam search with the LM's KV cache. prompt_ids (B, L), LEFT-padded when ragged
        (with `attention_mask`). Returns only the new tokens (B * num_return_sequences, <= max_new_tokens),
        padded with the pad id after EOS."""
        lat = self.visual_latents(video, mask_ratio, generator)                  # once per call
        expand = max(num_beams, gen_kwargs.get("num_return_sequences", 1))     # HF's repeat_interleave size
        gen_kwargs.setdefault("do_sample", False)
        gc = self.lm.generation_config
        if gen_kwargs.get("pad_token_id", gc.pad_token_id) is None:
            eos = gc.eos_token_id
            gen_kwargs["pad_token_id"] = eos[0] if isinstance(eos, (list, tuple)) else eos
        with self.visual_context(lat.repeat_interleave(expand, 0)):
            out = self.lm.generate(input_ids=prompt_ids, attention_mask=attention_mask,
                                   max_new_tokens=max_new_tokens, num_beams=num_beams, **gen_kwargs)
        return out[:, prompt_ids.shape[1]:]

    @torch.no_grad()
    def score_options(self, video: torch.Tensor, prompt: str | list[str], options: list[str] | list[list[str]],
                      tokenizer, reduction: str = "sum", mask_ratio: float | None = None,
                      generator: torch.Generator | None = None, chunk: int = 32) -> torch.Tensor:
        """(B, n_options) log-likelihood of each option given video + prompt: the sum (or `reduction="mean"`)
        of the option tokens' log-probs. `prompt`: one for all videos or one per video; `options`: shared
        list or one list per video (same count). Prompt ids use the tokenizer's special tokens, options none;
        the two id lists are concatenated (so write options with their leading space). Rows are left-padded
        and only the option window's logits are computed; `chunk` rows per LM call."""
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        B = video.shape[0]
        prompts = [prompt] * B if isinstance(prompt, str) else list(prompt)
        opts = [list(options)] * B if isinstance(options[0], str) else [list(o) for o in options]
        n = len(opts[0])
        if len(prompts) != B or len(opts) != B or any(len(o) != n for o in opts):
            raise ValueError(f"need one prompt / option list per video ({B}) and the same number of options")
        rows, lens = [], []
        for p, os_ in zip(prompts, opts):
            p_ids = list(tokenizer(p).input_ids)
            if not p_ids:
                raise ValueError("the prompt has no tokens: the first option token would have no context")
            for o in os_:
                o_ids = list(tokenizer(o, add_special_tokens=False).input_ids)
                if not o_ids:
                    raise ValueError(f"option {o!r} has no tokens")
                rows.append(p_ids + o_ids)
                lens.append(len(o_ids))
        R, L, W = len(rows), max(map(len, rows)), max(lens)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.full((R, L), pad, dtype=torch.long)
        am = torch.zeros(R, L, dtype=torch.long)
        for r, row in enumerate(rows):                                           # left padding
            ids[r, L - len(row):] = torch.tensor(row)
            am[r, L - len(row):] = 1
        dev = self.lm.device
        ids, am = ids.to(dev), am.to(dev)
        pos = (am.cumsum(-1) - 1).clamp(min=0)                                   # (R, L) positions
        lat = self.visual_latents(video, mask_ratio, generator).repeat_interleave(n, 0)  # (R, M, D)
        lens_t = torch.tensor(lens, device=dev)
        in_opt = torch.arange(W, device=dev)[None] >= (W - lens_t)[:, None]      # (R, W) option targets
        scores = []
        for s in range(0, R, chunk):
            sl = slice(s, s + chunk)
            with self.visual_context(lat[sl]):
                logits = self.lm(input_ids=ids[sl], attention_mask=am[sl], position_ids=pos[sl],
                                 logits_to_keep=W + 1).logits.float()            # (r, W+1, V)
            logp = logits[:, -W - 1:-1].log_softmax(-1)                          # predicts the last W tokens
            tok = logp.gather(-1, ids[sl, L - W:, None])[..., 0] * in_opt[sl]   # (r, W)
            scores.append(tok.sum(1))
        out = torch.cat(scores)
        if reduction == "mean":
            out = out / lens_t
        return out.view(B, n)

    # --- parameters and persistence --------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trained connector: in_norm / in_proj / visual_pos (/ visual_time) / resampler / xattn."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(("encoder.", "lm."))}

    def save(self, directory: str | Path) -> Path:
        """Write the trained tensors (safetensors) + a JSON config referencing the encoder and LM dirs."""
        from safetensors.torch import save_file

        if not self.cfg.encoder_path or not self.cfg.lm_path:
            raise ValueError("save() needs cfg.encoder_path and cfg.lm_path (the frozen parts are referenced, "
                             "not copied); build the model from paths or set them")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.trainable_state_dict().items()},
                  str(d / WEIGHTS))
        cfg = asdict(self.cfg)
        cfg["encoder_path"] = str(Path(cfg["encoder_path"]).absolute())
        cfg["lm_path"] = str(Path(cfg["lm_path"]).absolute())
        (d / CONFIG).write_text(json.dumps(cfg, indent=1))
        return d

    @classmethod
    def load(cls, directory: str | Path, map_location: str = "cpu", trained: bool = True,
             **overrides) -> "VideoToText":
        """Rebuild from `save()`: loads the referenced encoder and LM, then the trained tensors (checked, then
        left out when `trained=False`: the same model with its connector as initialised, gates at zero, i.e. the
        LM's own outputs). `overrides` replace config fields (e.g. a moved `lm_path`, or `mask_ratio`)."""
        from safetensors.torch import load_file

        d = Path(directory)
        if not (d / CONFIG).is_file() or not (d / WEIGHTS).is_file():
            raise FileNotFoundError(f"{d}: not a saved VideoToText (needs {CONFIG} and {WEIGHTS})")
        model = cls(V2TConfig(**{**json.loads((d / CONFIG).read_text()), **overrides}))
        state = load_file(str(d / WEIGHTS), device=map_location)
        own = model.trainable_state_dict()
        if set(state) != set(own):
            raise ValueError(f"{d}: weights do not match the model: missing {sorted(set(own) - set(state))[:5]}, "
                             f"unexpected {sorted(set(state) - set(own))[:5]}")
        if trained:
            model.load_state_dict(state, strict=False)
        return model.to(map_location)


def caption_batch(tokenizer, prompts: list[str], targets: list[str], eos: bool = True,
                  max_length: int | None = None) -> dict[str, torch.Tensor]:
    """Right-padded training batch: input_ids = prompt + target (+ EOS), labels = -100 except on target (+EOS)
    tokens, attention_mask. Prompt ids with the tokenizer's special tokens, targets without."""
    rows, labels = [], []
    for p, t in zip(prompts, targets, strict=True):
        p_ids = list(tokenizer(p).input_ids)
        t_ids = list(tokenizer(t, add_special_tokens=False).input_ids) + ([tokenizer.eos_token_id] if eos else [])
        ids, lab = (p_ids + t_ids)[:max_length], ([-100] * len(p_ids) + t_ids)[:max_length]
        rows.append(ids)
        labels.append(lab)
    L = max(map(len, rows))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = {"input_ids": torch.full((len(rows), L), pad), "attention_mask": torch.zeros(len(rows), L, dtype=torch.long),
           "labels": torch.full((len(rows), L), -100)}
    for i, (ids, lab) in enumerate(zip(rows, labels)):
        out["input_ids"][i, :len(ids)] = torch.tensor(ids)
        out["attention_mask"][i, :len(ids)] = 1
        out["labels"][i, :len(lab)] = torch.tensor(lab)
    return out
