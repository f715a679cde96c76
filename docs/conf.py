"""Sphinx configuration of the qsimcells documentation (Sphinx + myst-nb, furo theme).

Build with ``make docs`` (``sphinx-build -W --keep-going -b html docs docs/_build/html``).
The build needs no network: intersphinx has no mapping and notebooks are not executed.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# The package is installed (editable) in the project's virtualenv; fall back to the source tree
# so the docs also build from a plain checkout.
try:
    import qsimcells  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    sys.path.insert(0, str(ROOT / "src"))

from qsimcells._version import __version__  # noqa: E402

# -- project ---------------------------------------------------------------------------------
project = "qsimcells"
author = "qsimcells developers"
copyright = "qsimcells developers"
version = ".".join(__version__.split(".")[:2])
release = __version__

# -- extensions ------------------------------------------------------------------------------
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # before sphinx_autodoc_typehints
    "sphinx.ext.intersphinx",
    "sphinx_autodoc_typehints",
]

templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "jupyter_execute",
    "**.ipynb_checkpoints",
    "Thumbs.db",
    ".DS_Store",
]

# -- autodoc / autosummary / napoleon -------------------------------------------------------
autosummary_generate = True  # pages land in docs/api/generated (git-ignored)
autosummary_imported_members = False
autodoc_member_order = "bysource"
# Types go into the parameter descriptions through sphinx_autodoc_typehints; Sphinx's own
# ``autodoc_typehints = "description"`` would also merge them into data entries (``hookimpl``).
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_param = True
napoleon_use_rtype = True
napoleon_use_ivar = True

# sphinx_autodoc_typehints: show types, never fail on names imported under TYPE_CHECKING
# (qiskit, anndata, pandas and networkx load lazily in qsimcells).
typehints_fully_qualified = False
always_document_param_types = False
typehints_document_rtype = True
typehints_use_signature = False
typehints_use_signature_return = False
# sphinx-autodoc-typehints 3.6 calls an API that Sphinx 9 deprecates (a Python
# DeprecationWarning printed once per docstring, not a Sphinx warning); keep the log clean.
warnings.filterwarnings(
    "ignore", message=r"'sphinx_autodoc_typehints\.", category=DeprecationWarning
)

# -- intersphinx: no network here, so no mappings --------------------------------------------
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

# -- myst / myst-nb --------------------------------------------------------------------------
nb_execution_mode = "off"  # notebooks are rendered with their stored outputs
myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath", "deflist"]
myst_heading_anchors = 3

# -- html ------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"qsimcells {release}"
html_static_path: list[str] = []


# -- glob toctrees that may be empty ---------------------------------------------------------
# ``tutorials/index`` and ``benchmarks/index`` list their folder with a glob toctree. Sphinx
# warns when a glob matches nothing (and that warning cannot be silenced through
# ``suppress_warnings``), so while a folder holds no page the toctree is swapped for a note.
_GLOB_INDEXES = {
    "tutorials/index": "No tutorials have been published yet.",
    "benchmarks/index": "No benchmark reports have been published yet.",
}
_TOCTREE_RE = re.compile(r"^```\{toctree\}\n(?:.*\n)*?```\n", re.MULTILINE)


def _drop_empty_glob(app, docname: str, source: list[str]) -> None:
    note = _GLOB_INDEXES.get(docname)
    if note is None:
        return
    folder = docname.rsplit("/", 1)[0] + "/"
    if any(d.startswith(folder) and d != docname for d in app.env.found_docs):
        return
    source[0] = _TOCTREE_RE.sub(f"```{{note}}\n{note}\n```\n", source[0], count=1)
    # still re-read this page when a document is added (as for a real glob toctree)
    app.env.glob_toctrees.add(docname)


def setup(app):
    app.connect("source-read", _drop_empty_glob)
