"""Segment captioners (one class + one YAML under configs/captioner/ each). A captioner implements the
`evals.contracts.Captioner` protocol: `caption(clips) -> list[str]`, one sentence per clip."""
