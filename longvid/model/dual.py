"""The contrastive dual encoder (video tower + text tower + InfoNCE), saved as safetensors + JSON config
(+ its tokenizer), loadable with `DualEncoder.from_pretrained(dir)`."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from longvid.losses import ContrastiveLoss
from longvid.model.encoder import EncoderConfig, ImageViT, VideoEncoder, inflate_patch_kernel
from longvid.model.text import TextConfig, TextEncoder

CONFIG, WEIGHTS, TOKENIZER = "config.json", "model.safetensors", "tokenizer"


@dataclass
class DualConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    text: TextConfig = field(default_factory=TextConfig)
    video_model: str = "vivit"       # "vivit" (ShortViViT / LongViViT) | "imagevit" (per-frame + late fusion)
    fusion: str = "average"          # ImageViT's temporal fusion
    init_temperature: float = 0.07
    vocab_size: int = 1000           # text vocabulary (from the tokenizer)

    @classmethod
    def from_dict(cls, d: dict) -> "DualConfig":
        d = dict(d)
        return cls(encoder=EncoderConfig(**d.pop("encoder", {})), text=TextConfig(**d.pop("text", {})), **d)


class DualEncoder(nn.Module):
    def __init__(self, cfg: DualConfig):
        super().__init__()
        if cfg.encoder.embed_dim != cfg.text.embed_dim:
            raise ValueError(f"video embed_dim {cfg.encoder.embed_dim} != text embed_dim {cfg.text.embed_dim}")
        self.cfg = cfg
        if cfg.video_model == "vivit":
            self.video = VideoEncoder(cfg.encoder)
        elif cfg.video_model == "imagevit":
            self.video = ImageViT(cfg.encoder, cfg.fusion)
        else:
            raise ValueError(f"video_model must be 'vivit' or 'imagevit', got {cfg.video_model!r}")
        self.text = TextEncoder(cfg.text, cfg.vocab_size)
        self.loss = ContrastiveLoss(cfg.init_temperature)

    @property
    def vivit(self) -> VideoEncoder:
        """The underlying ViT (the ImageViT's per-frame ViT), e.g. for image inputs and tuning."""
        return self.video if isinstance(self.video, VideoEncoder) else self.video.vit

    def encode_video(self, video: torch.Tensor, mask_ratio: float = 0.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        return self.video(video, mask_ratio=mask_ratio, generator=generator).embedding

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.vivit.encode_image(image).embedding

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text(input_ids, attention_mask)

    def save_pretrained(self, directory: str | Path, tokenizer=None) -> Path:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(d / WEIGHTS))
        cfg = asdict(self.cfg)
        cfg["text"]["pretrained"] = None  # weights are in the safetensors; the architecture from config
        if self.cfg.text.pretrained:
            cfg["text"].update(_bert_geometry(self.text.bert.config))
        (d / CONFIG).write_text(json.dumps(cfg, indent=1))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(d / TOKENIZER))
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> "DualEncoder":
        from safetensors.torch import load_file

        d = Path(directory)
        if not (d / CONFIG).is_file() or not (d / WEIGHTS).is_file():
            raise FileNotFoundError(f"{d}: not a saved DualEncoder (needs {CONFIG} and {WEIGHTS})")
        model = cls(DualConfig.from_dict(json.loads((d / CONFIG).read_text())))
        state = load_file(str(d / WEIGHTS), device=map_location)
        load_state_flexible(model, state)
        return model


def load_tokenizer(directory: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(Path(directory) / TOKENIZER), local_files_only=True)


def _bert_geometry(c) -> dict:
    return dict(hidden_size=c.hidden_size, num_hidden_layers=c.num_hidden_layers,
                num_attention_heads=c.num_attention_heads, intermediate_size=c.intermediate_size)


def is_image_dual(directory: str | Path) -> bool:
    """Whether `directory` is a saved ImageViT `DualEncoder` (to inflate with `image_init=`); False for any other
    folder (an HF image model); a saved ViViT is refused: that is what `init_from=` loads."""
    f = Path(directory) / CONFIG
    if not f.is_file() or not (Path(directory) / WEIGHTS).is_file():
        return False
    kind = json.loads(f.read_text()).get("video_model")
    if kind == "vivit":
        raise ValueError(f"image_init={directory}: a saved ViViT, not an image model (start from it with init_from=)")
    return kind == "imagevit"


def inflate_imagevit(state: dict[str, torch.Tensor], tubelet_frames: int) -> dict[str, torch.Tensor]:
    """A saved ImageViT `DualEncoder`'s weights as a ViViT's (the paper's stage-1 start: the image-text model
    inflated into the video model): the per-frame ViT's `video.vit.*` become `video.*`, its 2D patch kernel is
    also inflated along time into the tubelet kernel (`inflate_patch_kernel`: a static clip embeds like the
    image), temporal positions stay at zero; the text tower and temperature are copied as they are. The
    late-fusion pooling weights (`fusion=attention`) have no ViViT counterpart and are left out."""
    out = {}
    for k, v in state.items():
        if k.startswith("video.vit."):
            out["video." + k[len("video.vit."):]] = v
        elif not k.startswith("video."):
            out[k] = v
    if "video.patch.weight" not in out:
        raise ValueError("not an ImageViT checkpoint: no video.vit.patch.weight")
    out["video.tubelet.weight"] = inflate_patch_kernel(out["video.patch.weight"], tubelet_frames)
    out["video.tubelet.bias"] = out["video.patch.bias"].clone()
    out.pop("video.pos_time", None)          # untrained in an ImageViT; the ViViT's start at zero
    return out


def load_state_flexible(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load weights, interpolating temporal positions to the model's frame count (short -> long) and
    leaving new parameters (e.g. temporal blocks added to a joint model) at their initialisation.
    Unexpected keys are an error."""
    own = model.state_dict()
    fixed = {}
    for k, v in state.items():
        if k not in own:
            continue
        if k.endswith("pos_time") and v.shape != own[k].shape:
            v = torch.nn.functional.interpolate(v.T[None], size=own[k].shape[0], mode="linear",
                                                align_corners=True)[0].T
        if v.dim() == 0 and own[k].shape == (1,):      # a scalar saved 0-dim, before FSDP needed 1-element ones
            v = v.reshape(1)
        if v.shape != own[k].shape:
            raise ValueError(f"weight {k}: checkpoint shape {tuple(v.shape)} vs model {tuple(own[k].shape)}")
        fixed[k] = v
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        raise ValueError(f"checkpoint has weights the model does not: {unexpected[:5]}")
    model.load_state_dict(fixed, strict=False)
