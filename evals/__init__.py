"""longvid's shared evaluation layer. Imports nothing else of ours; systems are built from config."""
from pathlib import Path


def config_dir() -> str:
    """The repository's `configs/` folder (the suite is installed editable from its checkout)."""
    d = Path(__file__).resolve().parent.parent / "configs"
    if not (d / "compare.yaml").is_file():
        raise FileNotFoundError(f"configs not found at {d}: install the suite editable from its checkout "
                                "(pip install -e .)")
    return str(d)
