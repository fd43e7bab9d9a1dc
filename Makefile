# Entry points; see README.md.
#   make setup / make test                 the development stack (requirements/constraints.txt)
#   make setup STACK=oldest / make test STACK=oldest
#                                          the oldest supported stack (torch 2.1.2, numpy 1.x)
STACK ?= latest
ifeq ($(STACK),oldest)
PYTHON ?= $(CURDIR)/.venv-oldest/bin/python
# what the oldest stack runs: backbones, checkpoints, compatibility, installation, entry
# points, resume, hook and demo, and image classification (mmpretrain needs torchvision,
# which this stack has)
TESTS ?= tests/test_base.py tests/test_backbones.py tests/test_focalnet.py \
	tests/test_focal_transformer.py tests/test_arguments.py tests/test_checkpoint.py \
	tests/test_dino_checkpoint.py tests/test_compat.py tests/test_install.py \
	tests/test_registry.py tests/test_entry_points.py tests/test_resume.py tests/test_hook.py \
	tests/test_demo.py tests/test_classification.py tests/test_classification_zoo.py \
	tests/test_recipes.py tests/test_classification_demo.py
else ifdef VIRTUAL_ENV
PYTHON ?= $(VIRTUAL_ENV)/bin/python
else
PYTHON ?= $(CURDIR)/.venv/bin/python
endif
TESTS ?= tests
WHEELS ?=
# test processes (pytest-xdist): auto, one per core; JOBS=0 runs the suite in this process
JOBS ?= auto
PYTEST = $(PYTHON) -m pytest $(TESTS) -q -n $(JOBS)

.PHONY: setup test test-quick docs lint
setup:
	STACK=$(STACK) bash tools/setup_env.sh $(WHEELS)

# the development stack lints first (flake8, setup.cfg's [flake8]); the oldest stack only tests
test: setup $(if $(filter latest,$(STACK)),lint)
	$(PYTEST)

# the quick tier for the edit-test loop: the suite without the tests marked slow (tool runs,
# trainings, exports of detectors, full-size builds); docs/en/tests.md says what it leaves out
test-quick: setup
	$(PYTEST) -m 'not slow'

lint: setup
	$(PYTHON) -m flake8 mmfocal tools tests configs docs

# The documentation (docs/en, Sphinx + MyST) as HTML in docs/_build/html; warnings are errors.
docs: setup
	$(PYTHON) -m sphinx -W --keep-going -b html docs/en docs/_build/html

# The demo on synthetic data: train, evaluate and draw a FocalNet Mask R-CNN (demo) or a
# Focal Transformer UperNet (demo-seg) on a CPU; outputs under work_dirs/demo_{det,seg}.
# DEMO_ARGS=--record keeps the run's figures in docs/demo_results.json (the README's table).
.PHONY: demo demo-seg
demo: setup
	$(PYTHON) tools/demo.py det $(DEMO_ARGS)

demo-seg: setup
	$(PYTHON) tools/demo.py seg $(DEMO_ARGS)

# The classification demo: the Keras tutorial's FocalNet, scaled down, trained and tested on
# scikit-learn's handwritten digits, with the tutorial's pictures; outputs under
# work_dirs/demo_cls. mmpretrain needs torchvision, which the oldest stack has: it always
# runs there (.venv-oldest, set up first).
.PHONY: demo-cls
demo-cls:
	$(MAKE) setup STACK=oldest
	$(CURDIR)/.venv-oldest/bin/python tools/demo.py cls $(DEMO_ARGS)
