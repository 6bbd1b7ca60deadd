"""Sphinx configuration for the tahoe-governor documentation."""

project = "tahoe-governor"
author = "the tahoe-governor developers"
extensions = ["myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
myst_heading_anchors = 3
