"""Statistical helpers shared by the tests (imported as ``from _helpers import ...``)."""

from qsimcells.testing import assert_distribution_matches, niche_bits

__all__ = ["assert_distribution_matches", "niche_bits"]
