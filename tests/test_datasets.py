"""qs.datasets: spike-time files, binning into activity AnnData, the Ising population."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import qsimcells as qs
from qsimcells.samplers import boltzmann_probabilities
from qsimcells.testing import assert_distribution_matches, assert_moments_match

# two units, 0.1 s bins over [0, 0.6): a fires in bins 0, 3 (twice), 5; b in bins 1 and 3
TIMES = np.array([0.01, 0.12, 0.3, 0.35, 0.31, 0.55])
UNITS = np.array(["a", "b", "a", "a", "b", "a"])


def _x(adata) -> np.ndarray:
    return adata.X.toarray()


def test_bin_spike_times_by_hand() -> None:
    adata = qs.datasets.bin_spike_times(TIMES, UNITS, bin_size=0.1, t_stop=0.6, n_timesteps=2)
    # bins (a, b): 0:(1,0) 1:(0,1) 2:(0,0) 3:(1,1) 4:(0,0) 5:(1,0); windows of 2, timestep-major
    expected = np.array([[1, 0, 0, 1], [0, 0, 1, 1], [0, 0, 1, 0]])
    np.testing.assert_array_equal(_x(adata), expected)
    assert adata.X.dtype == np.uint8
    assert list(adata.var_names) == ["a@t0", "b@t0", "a@t1", "b@t1"]
    assert list(adata.var["unit"]) == ["a", "b", "a", "b"]
    assert list(adata.var["timestep"]) == [0, 0, 1, 1]
    np.testing.assert_allclose(adata.obs["t_start"], [0.0, 0.2, 0.4])
    record = adata.uns["qsimcells"]
    assert record["activity"] == {"n_units": 2, "n_timesteps": 2, "bin_size": 0.1}
    # 0.3 lands in bin 3 exactly (no rounding down to bin 2), and 0.3/0.35 are one spike bin
    assert record["multi_spike_bins"] == 1 and record["dropped_spikes"] == 0
    assert record["n_spikes"] == 6


def test_bin_spike_times_interval_stride_units_and_trials() -> None:
    # t_stop=0.5 keeps five whole bins and drops the spike at 0.55
    adata = qs.datasets.bin_spike_times(TIMES, UNITS, bin_size=0.1, t_stop=0.5)
    np.testing.assert_array_equal(_x(adata), [[1, 0], [0, 1], [0, 0], [1, 1], [0, 0]])
    assert adata.uns["qsimcells"]["dropped_spikes"] == 1
    # t_stop=None: up to the last spike, whose bin is kept
    assert qs.datasets.bin_spike_times(TIMES, UNITS, bin_size=0.1).n_obs == 6
    # overlapping windows
    over = qs.datasets.bin_spike_times(
        TIMES, UNITS, bin_size=0.1, t_stop=0.6, n_timesteps=3, stride=1
    )
    assert over.n_obs == 4
    np.testing.assert_array_equal(_x(over)[1], [0, 1, 0, 0, 1, 1])
    # a silent unit given in `units` gets a column of zeros; order follows `units`
    silent = qs.datasets.bin_spike_times(
        TIMES, UNITS, bin_size=0.1, t_stop=0.6, units=["b", "c", "a"]
    )
    np.testing.assert_array_equal(_x(silent)[:, 1], 0)
    np.testing.assert_array_equal(_x(silent)[:, 2], [1, 0, 0, 1, 0, 1])
    # trials are binned separately and windows never cross them
    trials = np.array([0, 0, 0, 1, 1, 1])
    tr = qs.datasets.bin_spike_times(
        TIMES, UNITS, bin_size=0.1, t_stop=0.6, trials=trials, n_timesteps=3
    )
    assert tr.n_obs == 4 and list(tr.obs["trial"]) == ["0", "0", "1", "1"]
    np.testing.assert_array_equal(
        _x(tr), [[1, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 1, 0]]
    )


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".txt", ".npz"])
@pytest.mark.parametrize("with_trials", [False, True])
def test_spike_files_round_trip(tmp_path, suffix, with_trials) -> None:
    trials = np.array([1, 1, 2, 2, 2, 2]) if with_trials else None
    path = qs.datasets.write_spike_times(tmp_path / f"spikes{suffix}", TIMES, UNITS, trials=trials)
    table = qs.datasets.read_spike_times(path)
    assert list(table.columns) == (["unit", "time", "trial"] if with_trials else ["unit", "time"])
    np.testing.assert_array_equal(table["time"].to_numpy(), TIMES)  # exact (17 digits)
    assert [str(u) for u in table["unit"]] == list(UNITS)
    # binning the file's DataFrame equals binning the arrays
    direct = qs.datasets.bin_spike_times(TIMES, UNITS, bin_size=0.1, trials=trials)
    from_file = qs.datasets.bin_spike_times(table, bin_size=0.1)
    np.testing.assert_array_equal(_x(direct), _x(from_file))


def test_read_a_hand_written_csv_with_comments_and_extra_columns(tmp_path) -> None:
    path = tmp_path / "rec.csv"
    path.write_text(
        "# recorded 2024\ntime, unit, electrode\n0.05, 3, e1\n0.25, 7, e2\n0.26, 3, e1\n"
    )
    table = qs.datasets.read_spike_times(path)
    assert list(table.columns) == ["unit", "time"]
    adata = qs.datasets.bin_spike_times(table, bin_size=0.1)
    assert list(adata.var_names) == ["3", "7"]
    np.testing.assert_array_equal(_x(adata), [[1, 0], [0, 0], [1, 1]])


def test_spike_file_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"path: unknown format '\.json'"):
        qs.datasets.read_spike_times(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match="path: no such file"):
        qs.datasets.read_spike_times(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("neuron,t\n1,0.1\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['unit', 'time'\]"):
        qs.datasets.read_spike_times(bad)
    nan = tmp_path / "nan.csv"
    nan.write_text("unit,time\n1,0.1\n2,\n")
    with pytest.raises(ValueError, match="spike_times: contains NaN"):
        qs.datasets.read_spike_times(nan)
    with pytest.raises(ValueError, match="labels with spaces"):
        qs.datasets.write_spike_times(tmp_path / "s.txt", [0.1], ["unit one"])
    with pytest.raises(ValueError, match="unit_ids: has 1 entries for 2 spike times"):
        qs.datasets.write_spike_times(tmp_path / "s.csv", [0.1, 0.2], ["a"])


def test_bin_spike_times_errors() -> None:
    with pytest.raises(ValueError, match="bin_size"):
        qs.datasets.bin_spike_times(TIMES, UNITS, bin_size=0.0)
    with pytest.raises(
        ValueError, match="n_timesteps: 10 bins per window, but the interval holds only 6"
    ):
        qs.datasets.bin_spike_times(TIMES, UNITS, bin_size=0.1, n_timesteps=10)
    with pytest.raises(ValueError, match="t_stop: must exceed t_start"):
        qs.datasets.bin_spike_times(TIMES, UNITS, bin_size=0.1, t_start=0.5, t_stop=0.2)
    with pytest.raises(ValueError, match="unit_ids: give the unit of each spike"):
        qs.datasets.bin_spike_times(TIMES, bin_size=0.1)
    with pytest.raises(ValueError, match="unit_ids, trials: taken from the DataFrame"):
        qs.datasets.bin_spike_times(
            pd.DataFrame({"unit": UNITS, "time": TIMES}), UNITS, bin_size=0.1
        )
    with pytest.raises(ValueError, match="units: contains duplicates"):
        qs.datasets.bin_spike_times(TIMES, UNITS, bin_size=0.1, units=["a", "a"])
    with pytest.raises(ValueError, match="trials: has shape"):
        qs.datasets.bin_spike_times(TIMES, UNITS, bin_size=0.1, trials=[0, 1])
    with pytest.raises(TypeError, match="n_timesteps"):
        qs.datasets.bin_spike_times(TIMES, UNITS, bin_size=0.1, n_timesteps=1.5)


def _exact_window(adata) -> np.ndarray:
    ising = adata.uns["qsimcells"]["ising"]
    return boltzmann_probabilities(ising["h"], ising["W"])


@pytest.mark.parametrize("sampler", ["exact", "chain"])
def test_ising_population_samples_its_exact_distribution(sampler) -> None:
    # 3 units x 3 bins = 9 columns, 512 states: both exact samplers match enumeration
    adata = qs.datasets.ising_population(
        3, 40_000, n_timesteps=3, coupling=1.0, temporal_coupling=1.5, sampler=sampler, rng=4
    )
    assert adata.uns["qsimcells"]["sampler"] == sampler and adata.uns["qsimcells"]["exact"]
    assert_distribution_matches(_x(adata), _exact_window(adata))


def test_ising_population_model_and_layout() -> None:
    adata = qs.datasets.ising_population(
        4,
        10,
        n_timesteps=3,
        rate=[0.1, 0.2, 0.3, 0.4],
        coupling=0.5,
        coupling_mean=0.2,
        temporal_coupling=0.7,
        rng=1,
    )
    ising = adata.uns["qsimcells"]["ising"]
    J, _K, h, W = ising["J"], ising["K"], ising["h"], ising["W"]
    np.testing.assert_allclose(
        h, -np.tile(np.log(np.array([1, 2, 3, 4]) / np.array([9, 8, 7, 6])), 3)
    )
    np.testing.assert_allclose(J, J.T)
    np.testing.assert_allclose(np.diag(J), 0)
    np.testing.assert_allclose(W[:4, :4], -J)  # spatial couplings inside each bin
    np.testing.assert_allclose(W[8:, 8:], -J)
    np.testing.assert_allclose(np.diag(W[:4, 4:8]), -0.7)  # unit i, bins t and t+1
    np.testing.assert_allclose(W[:4, 8:], 0)  # no coupling two bins apart
    np.testing.assert_allclose(W, W.T)
    assert adata.shape == (10, 12) and adata.uns["qsimcells"]["activity"]["n_timesteps"] == 3
    assert list(adata.var["unit"][:4]) == ["u0", "u1", "u2", "u3"]


def test_ising_population_auto_sampler_and_longer_windows() -> None:
    small = qs.datasets.ising_population(4, 5, n_timesteps=5, rng=0)
    assert small.uns["qsimcells"]["sampler"] == "exact"
    big = qs.datasets.ising_population(10, 50, n_timesteps=30, rng=0)
    assert big.uns["qsimcells"]["sampler"] == "chain" and big.shape == (50, 300)
    # a long window by the chain: its first and pair moments match enumeration (18 columns)
    long = qs.datasets.ising_population(
        2, 20_000, n_timesteps=9, coupling=1.0, temporal_coupling=1.5, sampler="chain", rng=3
    )
    assert_moments_match(_x(long), _exact_window(long))


def test_ising_population_through_a_named_ising_sampler() -> None:
    adata = qs.datasets.ising_population(
        3, 6000, n_timesteps=2, sampler="gibbs", num_sweeps=50, rng=2
    )
    assert adata.uns["qsimcells"]["sampler"] == "gibbs" and not adata.uns["qsimcells"]["exact"]
    assert_moments_match(_x(adata), _exact_window(adata))


def test_ising_population_is_deterministic_and_writes(tmp_path) -> None:
    a = qs.datasets.ising_population(4, 200, n_timesteps=2, rng=7)
    b = qs.datasets.ising_population(4, 200, n_timesteps=2, rng=7)
    c = qs.datasets.ising_population(4, 200, n_timesteps=2, rng=8)
    np.testing.assert_array_equal(_x(a), _x(b))
    assert not np.array_equal(_x(a), _x(c))
    a.write_h5ad(tmp_path / "pop.h5ad")
    import anndata as ad

    back = ad.read_h5ad(tmp_path / "pop.h5ad")
    np.testing.assert_array_equal(_x(back), _x(a))
    assert back.uns["qsimcells"]["activity"] == {"n_units": 4, "n_timesteps": 2, "bin_size": None}


def test_ising_population_errors() -> None:
    with pytest.raises(ValueError, match=r"rate: every rate must lie in \(0, 1\)"):
        qs.datasets.ising_population(3, 10, rate=1.2)
    with pytest.raises(ValueError, match="rate: expected a number or 3 rates"):
        qs.datasets.ising_population(3, 10, rate=[0.1, 0.2])
    with pytest.raises(ValueError, match="'chain' enumerates the 2\\*\\*n_units states"):
        qs.datasets.ising_population(13, 10, n_timesteps=2, sampler="chain")
    with pytest.raises(ValueError, match="need a named sampler"):
        qs.datasets.ising_population(3, 10, num_sweeps=5)
    with pytest.raises(ValueError, match="coupling"):
        qs.datasets.ising_population(3, 10, coupling=-1.0)
    with pytest.raises(ValueError, match="n_samples"):
        qs.datasets.ising_population(3, 0)
