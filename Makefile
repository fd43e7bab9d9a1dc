# Entry points; see README.md.
ifdef VIRTUAL_ENV
PYTHON ?= $(VIRTUAL_ENV)/bin/python
else
PYTHON ?= $(CURDIR)/.venv/bin/python
endif
WHEELS ?=

.PHONY: setup test docs
setup:
	bash tools/setup_env.sh $(WHEELS)

test: setup
	$(PYTHON) -m pytest tests -q

# The documentation (docs/en, Sphinx + MyST) as HTML in docs/_build/html; warnings are errors.
docs: setup
	$(PYTHON) -m sphinx -W --keep-going -b html docs/en docs/_build/html

# The demo on synthetic data: train, evaluate and draw a FocalNet Mask R-CNN (demo) or a
# Focal Transformer UperNet (demo-seg) on a CPU; outputs under work_dirs/demo_{det,seg}.
.PHONY: demo demo-seg
demo: setup
	$(PYTHON) tools/demo.py det

demo-seg: setup
	$(PYTHON) tools/demo.py seg
