# Entry points; see README.md.
ifdef VIRTUAL_ENV
PYTHON ?= $(VIRTUAL_ENV)/bin/python
else
PYTHON ?= $(CURDIR)/.venv/bin/python
endif
WHEELS ?=

.PHONY: setup test
setup:
	bash tools/setup_env.sh $(WHEELS)

test: setup
	$(PYTHON) -m pytest tests -q
