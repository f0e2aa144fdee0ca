"""The package dependency rule (DESIGN.md §1), checked by parsing every import."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OURS = {"evals", "longvid", "baselines"}


def imports(pkg):
    for f in (REPO / pkg).rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield f, a.name
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield f, node.module


def test_evals_imports_nothing_else_of_ours():
    bad = [(str(f.relative_to(REPO)), m) for f, m in imports("evals") if m.split(".")[0] in OURS - {"evals"}]
    assert not bad


def test_longvid_imports_only_evals():
    bad = [(str(f.relative_to(REPO)), m) for f, m in imports("longvid") if m.split(".")[0] == "baselines"]
    assert not bad


def test_baselines_imports_only_evals_longvid_data_and_public_api():
    allowed = ("evals", "baselines", "longvid.data", "longvid.api")
    bad = [(str(f.relative_to(REPO)), m) for f, m in imports("baselines")
           if m.split(".")[0] in OURS and not m.startswith(allowed) and m != "longvid"]
    assert not bad


@pytest.mark.parametrize("pkg", sorted(OURS))
def test_our_packages_are_not_shadowed(pkg):
    """PyPI has unrelated `evals` and `baselines` packages: ours must be the ones imported."""
    mod = __import__(pkg)
    assert mod.__file__ and Path(mod.__file__).resolve().is_relative_to(REPO), mod.__file__


def test_no_heavy_imports_at_module_top_level():
    heavy = {"vllm", "decord", "pycocoevalcap", "torch", "transformers", "lightning"}
    bad = []
    for pkg in ("evals",):
        for f in (REPO / pkg).rglob("*.py"):
            if "metrics/hf" in str(f):
                continue  # an `evaluate` module script: imported only by evaluate.load
            for node in ast.parse(f.read_text()).body:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                bad += [(f.name, n) for n in names if n.split(".")[0] in heavy]
    assert not bad
