"""Niches placed in 2-D tissue: ``simulate(..., tissue=Tissue(...))`` fills ``obsm["spatial"]``.

One shot of the circuit is one niche, a cell of every cell type. A :class:`Tissue` puts the niche
centres on a square or hexagonal grid, a Poisson-disc sample or coordinates the user gives, and
the cells of each niche uniformly in a disc of diameter ``contact_radius`` around its centre, so
any two cells of one niche are within ``contact_radius`` of each other. Coordinates are in
micrometres (float64), in the layout squidpy reads (``obsm["spatial"]``,
``squidpy.gr.spatial_neighbors(adata, coord_type="generic")``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._utils import check_choice, check_finite

__all__ = ["Tissue"]

LAYOUTS = ("grid", "hex", "poisson")
OUTSIDE = "outside"  # the domain of a niche in no given domain


@dataclass(frozen=True)
class Tissue:
    """Where the niches of a simulation sit in 2-D tissue.

    Parameters
    ----------
    layout
        ``"grid"`` (square grid of pitch ``spacing``, filled row by row), ``"hex"`` (hexagonal
        packing, nearest centres ``spacing`` apart), ``"poisson"`` (a Poisson-disc sample: random
        centres at least ``spacing`` apart, scipy's :class:`~scipy.stats.qmc.PoissonDisk`; about
        0.4 ms per niche), or an array of shape ``(n_niches, 2)`` of niche centres in
        micrometres.
    spacing
        Distance between neighbouring niche centres in micrometres (the least distance for
        ``"poisson"``); ignored for given coordinates.
    contact_radius
        Largest distance between two cells of one niche, in micrometres; at most ``spacing``, so
        the cells of different niches never sit closer than ``spacing - contact_radius``.
    interaction_length
        Communication that decays with distance: each ligand-receptor gate of the design acts in
        a niche with probability ``exp(-d / interaction_length)``, ``d`` the distance between
        the niche's sender and receiver cells, and is left out of that niche's circuit
        otherwise. ``None`` (default): every gate acts in every niche, as without a tissue.
    domains
        Tissue domains: ``{name: (x, y, radius)}``, discs in micrometres. A niche belongs to the
        first domain that holds its centre, else to ``"outside"``; ``obs["domain"]`` says which.
    interacting_domains
        Names of the domains (``"outside"`` included) in which communication is switched on:
        elsewhere no ligand-receptor gate acts (needs ``interaction_length``). ``None``:
        everywhere.

    Examples
    --------
    >>> tissue = qs.sim.Tissue("hex", spacing=40.0, contact_radius=15.0)
    >>> adata = qs.sim.simulate(design, 1000, rng=0, tissue=tissue)
    >>> adata.obsm["spatial"].shape
    (2000, 2)
    """

    layout: str | Any = "grid"
    spacing: float = 50.0
    contact_radius: float = 15.0
    interaction_length: float | None = None
    domains: Any = None
    interacting_domains: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.layout, str):
            check_choice("layout", self.layout, LAYOUTS)
        else:
            centres = np.array(self.layout, dtype=float, copy=True)
            if centres.ndim != 2 or centres.shape[1] != 2 or centres.shape[0] == 0:
                raise ValueError(
                    f"layout: niche centres must have shape (n_niches, 2), got "
                    f"shape {centres.shape}; or choose one of {list(LAYOUTS)}"
                )
            if not np.isfinite(centres).all():
                raise ValueError("layout: niche centres must be finite (no NaN or inf)")
            centres.setflags(write=False)
            object.__setattr__(self, "layout", centres)
        spacing = check_finite("spacing", self.spacing, low=0.0, low_open=True)
        radius = check_finite("contact_radius", self.contact_radius, low=0.0, low_open=True)
        if self.given is None and radius > spacing:
            raise ValueError(
                f"contact_radius: {radius} is larger than spacing ({spacing}); "
                "niches would overlap, choose contact_radius <= spacing"
            )
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "contact_radius", radius)
        if self.interaction_length is not None:
            object.__setattr__(
                self,
                "interaction_length",
                check_finite("interaction_length", self.interaction_length, low=0.0, low_open=True),
            )
        object.__setattr__(self, "domains", _check_domains(self.domains))
        names = self.domain_names
        chosen = self.interacting_domains
        if chosen is not None:
            chosen = [chosen] if isinstance(chosen, str) else list(chosen)
            for name in chosen:
                check_choice("interacting_domains", name, names)
            if self.interaction_length is None:
                raise ValueError(
                    "interacting_domains: needs interaction_length (communication "
                    "in space); give both, or neither"
                )
            chosen = tuple(chosen)
        object.__setattr__(self, "interacting_domains", chosen)

    @property
    def domain_names(self) -> list[str]:
        """The domains, then ``"outside"``: the categories of ``obs["domain"]``."""
        return [name for name, *_ in self.domains] + [OUTSIDE]

    def domain_of(self, centres: np.ndarray) -> np.ndarray:
        """Index into :attr:`domain_names` of the domain of each niche centre."""
        codes = np.full(len(centres), len(self.domains), dtype=np.int16)
        for k, (_, x, y, radius) in reversed(list(enumerate(self.domains))):  # first one wins
            inside = np.hypot(centres[:, 0] - x, centres[:, 1] - y) <= radius
            codes[inside] = k
        return codes

    def communicating(self, codes: np.ndarray) -> np.ndarray:
        """Whether communication is switched on in the niches of domain ``codes``."""
        if self.interacting_domains is None:
            return np.ones(codes.shape, dtype=bool)
        on = [self.domain_names.index(name) for name in self.interacting_domains]
        return np.isin(codes, on)

    def coupling(self, distance: np.ndarray) -> np.ndarray:
        """Probability that a ligand-receptor gate acts between cells ``distance`` apart."""
        if self.interaction_length is None:
            return np.ones_like(distance, dtype=float)
        return np.exp(-np.asarray(distance, dtype=float) / self.interaction_length)

    @property
    def given(self) -> np.ndarray | None:
        """The user's niche centres, or ``None`` for a generated layout."""
        return None if isinstance(self.layout, str) else self.layout

    def centres(self, n_niches: int, rng: np.random.Generator) -> np.ndarray:
        """``(n_niches, 2)`` niche centres in micrometres."""
        if self.given is not None:
            if self.given.shape[0] != n_niches:
                raise ValueError(
                    f"layout: {self.given.shape[0]} niche centres given for "
                    f"{n_niches} niches (n_cells); give one centre per niche"
                )
            return np.array(self.given)
        if self.layout == "poisson":
            return _poisson_disc(n_niches, self.spacing, rng)
        return _lattice(n_niches, self.spacing, hexagonal=self.layout == "hex")

    def place_niches(
        self, n_niches: int, n_types: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(n_niches, 2)`` niche centres and ``(n_niches * n_types, 2)`` cell coordinates,
        niche-major like the rows of :func:`~qsimcells.sim.simulate`: each cell uniform in the
        disc of diameter ``contact_radius`` around its niche's centre."""
        centres = self.centres(n_niches, rng)
        half = self.contact_radius / 2
        radius = half * np.sqrt(rng.random((n_niches, n_types)))  # uniform in the disc
        angle = rng.random((n_niches, n_types)) * (2 * math.pi)
        offsets = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1)
        return centres, (centres[:, None, :] + offsets).reshape(-1, 2)

    def key(self) -> str:
        """A string that differs between tissues that place or couple differently."""
        given = (
            None
            if self.given is None
            else hashlib.sha256(np.ascontiguousarray(self.given).tobytes()).hexdigest()
        )
        return repr(
            (
                self.layout if given is None else given,
                self.spacing,
                self.contact_radius,
                self.interaction_length,
                self.domains,
                self.interacting_domains,
            )
        )

    def as_dict(self) -> dict[str, Any]:
        """The settings for ``uns["qsimcells"]["tissue"]`` (h5ad-safe)."""
        return {
            "layout": "given" if self.given is not None else self.layout,
            "spacing": self.spacing,
            "contact_radius": self.contact_radius,
            "interaction_length": (
                math.nan if self.interaction_length is None else self.interaction_length
            ),
            "domains": {name: np.array([x, y, r]) for name, x, y, r in self.domains},
            "interacting_domains": np.asarray(
                self.interacting_domains or self.domain_names, dtype=object
            ),
            "units": "micrometre",
        }


def _check_domains(domains: Any) -> tuple[tuple[str, float, float, float], ...]:
    """``{name: (x, y, radius)}`` as a tuple of ``(name, x, y, radius)``, checked."""
    if domains is None:
        return ()
    if isinstance(domains, tuple) and all(
        isinstance(d, tuple) and len(d) == 4 for d in domains
    ):  # already checked
        domains = {d[0]: d[1:] for d in domains}
    if not isinstance(domains, dict):
        raise TypeError(
            f"domains: expected a dict {{name: (x, y, radius)}}, got {type(domains).__name__}"
        )
    checked = []
    for name, disc in domains.items():
        if not isinstance(name, str) or not name or name == OUTSIDE:
            raise ValueError(
                f"domains: a domain name must be a non-empty string other than "
                f"{OUTSIDE!r}, got {name!r}"
            )
        values = list(disc) if isinstance(disc, (list, tuple, np.ndarray)) else []
        if len(values) != 3:
            raise ValueError(
                f"domains[{name!r}]: expected (x, y, radius) in micrometres, got {disc!r}"
            )
        x, y = (
            check_finite(f"domains[{name!r}].{a}", v) for a, v in zip("xy", values[:2], strict=True)
        )
        radius = check_finite(f"domains[{name!r}].radius", values[2], low=0.0, low_open=True)
        checked.append((name, x, y, radius))
    return tuple(checked)


def _lattice(n: int, spacing: float, *, hexagonal: bool) -> np.ndarray:
    """The first ``n`` points of a near-square patch of a square or hexagonal lattice."""
    row_pitch = spacing * math.sqrt(3) / 2 if hexagonal else spacing
    per_row = max(1, math.ceil(math.sqrt(n * row_pitch / spacing)))
    row, col = np.divmod(np.arange(n), per_row)
    x = col * spacing + (0.5 * spacing * (row % 2) if hexagonal else 0.0)
    return np.stack([x, row * row_pitch], axis=1).astype(float)


def _poisson_disc(n: int, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` random centres at least ``spacing`` apart in a square (grown until they fit)."""
    from scipy.stats import qmc

    side = spacing * math.sqrt(n / 0.5)  # Bridson-style samples fill about 0.6 per spacing^2
    for _ in range(8):
        engine = qmc.PoissonDisk(d=2, radius=spacing / side, rng=rng)
        points = engine.random(n)
        if len(points) == n:
            return points * side
        side *= 1.25
    raise RuntimeError(f"layout: could not place {n} Poisson-disc niches")  # pragma: no cover
