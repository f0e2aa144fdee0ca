"""Versioned prompt templates: `<name>.v<N>.yaml` files with a `system` and a `user` template (str.format
fields). A released file is never edited in place — a new wording is a new version — and every prediction
records the prompt's id and the digest of its file, so a table always says which words produced it.

`load_prompt("mcqa_letter.v1")` reads the packaged file; a path to a .yaml file loads a user's own prompt."""
from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Prompt:
    id: str          # e.g. "mcqa_letter.v1"
    system: str
    user: str
    digest: str      # sha256 of the file, first 12 hex digits

    @property
    def fields(self) -> set[str]:
        return {f for t in (self.system, self.user) for _, f, _, _ in string.Formatter().parse(t) if f}

    def messages(self, **values: str) -> list[dict[str, str]]:
        missing = self.fields - set(values)
        if missing:
            raise KeyError(f"prompt {self.id}: missing fields {sorted(missing)}")
        out = [{"role": "system", "content": self.system.format(**values)}] if self.system else []
        return out + [{"role": "user", "content": self.user.format(**values)}]

    def provenance(self) -> dict:
        return {"prompt": self.id, "prompt_digest": self.digest}


def available() -> list[str]:
    return sorted(p.name[:-5] for p in HERE.glob("*.v*.yaml"))


def load_prompt(name: str) -> Prompt:
    import yaml

    path = Path(name) if name.endswith((".yaml", ".yml")) else HERE / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"prompt {name!r} not found ({path}); packaged prompts: {available()}")
    raw = path.read_bytes()
    data = yaml.safe_load(raw) or {}
    unknown = set(data) - {"system", "user"}
    if unknown or "user" not in data:
        raise ValueError(f"prompt file {path}: needs a 'user' template (and optionally 'system'); "
                         f"unknown keys {sorted(unknown)}")
    pid = path.name.rsplit(".", 1)[0]
    return Prompt(pid, str(data.get("system") or ""), str(data["user"]), hashlib.sha256(raw).hexdigest()[:12])


def format_captions(captions) -> str:
    """captions: [(start_s, end_s, text)] in time order -> one line per segment; with a fourth element, the
    subtitles of the segment (what is said during it) follow the caption: `[0s-16s] a man talks | said: "..."`."""
    return "\n".join(f"[{c[0]:.0f}s-{c[1]:.0f}s] {c[2]}" + (f' | said: "{c[3]}"' if len(c) > 3 and c[3] else "")
                     for c in captions)
