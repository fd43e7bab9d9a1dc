"""Sphinx configuration of mmfocal's documentation (MyST Markdown, autodoc).

Build from the repository root with ``make docs`` (warnings are errors).
"""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)  # mmfocal from this checkout, installed or not
sys.path.insert(0, os.path.join(ROOT, 'tools', 'model_converters'))

from mmfocal.version import __version__  # noqa: E402

project = 'mmfocal'
copyright = 'mmfocal contributors'
release = version = __version__

extensions = ['myst_parser', 'sphinx.ext.autodoc', 'sphinx.ext.napoleon']
source_suffix = {'.md': 'markdown'}
exclude_patterns = ['_build']

# Anchors of headings down to level 4, slugged as GitHub does ("## Speed and memory" ->
# "#speed-and-memory"), so that links like page.md#section work on GitHub and here alike.
# tests/test_docs.py reads this value.
myst_heading_anchors = 4

autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_default_options = {'show-inheritance': True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = 'alabaster'
html_title = f'mmfocal {release}'
html_theme_options = {'description': 'FocalNet and Focal Transformer backbones for '
                                     'mmdetection 3.x and mmsegmentation 1.x'}
