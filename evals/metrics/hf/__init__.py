"""Local `evaluate` module directories (load with `evaluate.load(path)`, no Hub access)."""
from pathlib import Path

CAPTION_METRICS = str(Path(__file__).parent / "caption_metrics")
