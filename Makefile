# The two commands of the README: `make compare` (set up + the main job) and `make test` (set up + tests).
# Set-up creates .venv from pyproject.toml once (re-done when pyproject.toml changes).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: setup compare test
setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --progress-bar off -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

compare: setup
	$(VENV)/bin/longvid-compare $(ARGS)

test: setup
	$(VENV)/bin/python -m pytest $(ARGS)
