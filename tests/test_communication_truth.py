"""Communication scored against the spatial truth (issue 16): qs.tl.true_communication and
qs.tl.score_communication on qs.tl.cellchat, squidpy ligrec and liana results."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import qsimcells as qs

DESIGN = qs.sim.presets.romero2025(True, n_housekeeping=5)
TYPES = list(DESIGN.cell_types)
TISSUE = qs.sim.Tissue(
    "hex",
    spacing=40.0,
    contact_radius=15.0,
    interaction_length=30.0,
    domains={"tumour": (300.0, 300.0, 250.0)},
    interacting_domains=["tumour"],
)
LR = [("g3", "g5"), ("g7", "g0")]  # the design's ligand-receptor gates (CT1->CT2, CT2->CT1)


@pytest.fixture(scope="module")
def tissue_data() -> ad.AnnData:
    return qs.sim.simulate(DESIGN, 1500, rng=0, tissue=TISSUE)


def _by_domain(adata: ad.AnnData, run) -> dict[str, object]:
    return {
        d: run(adata[adata.obs["domain"] == d].copy()) for d in adata.obs["domain"].cat.categories
    }


def test_truth_follows_the_programmed_coupling(tissue_data, tmp_path) -> None:
    truth = qs.tl.true_communication(tissue_data, region_key="domain")
    assert set(map(tuple, truth[["ligand", "receptor"]].to_numpy())) == set(LR)
    assert set(truth["domain"]) == {"tumour", "outside"}
    assert (truth.loc[truth["domain"] == "outside", "active_fraction"] == 0).all()
    xy = tissue_data.obsm["spatial"].reshape(-1, len(TYPES), 2)
    distance = np.linalg.norm(xy[:, 0] - xy[:, 1], axis=1)  # CT1 and CT2 cell of each niche
    tumour = tissue_data.obs["domain"].to_numpy().reshape(-1, len(TYPES))[:, 0] == "tumour"
    p = np.exp(-distance[tumour] / TISSUE.interaction_length)
    sigma = np.sqrt((p * (1 - p)).sum()) / p.size  # binomial sd of the fraction
    for lig, rec in LR:
        row = truth[(truth["ligand"] == lig) & (truth["domain"] == "tumour")].iloc[0]
        assert row["n_senders"] == p.size
        assert abs(row["active_fraction"] - p.mean()) < 4 * sigma
        assert (row["source"], row["target"]) == tuple(
            DESIGN.genes["cell_type"][g] for g in (lig, rec)
        )
    whole = qs.tl.true_communication(tissue_data)
    assert "domain" not in whole and len(whole) == len(LR)
    assert np.allclose(
        whole["active_fraction"],
        truth.groupby("ligand", sort=False)["active_fraction"]
        .apply(
            lambda f: (
                (f * truth.loc[f.index, "n_senders"]).sum() / truth.loc[f.index, "n_senders"].sum()
            )
        )
        .to_numpy(),
    )
    path = tmp_path / "tissue.h5ad"
    tissue_data.write_h5ad(path)
    pd.testing.assert_frame_equal(
        qs.tl.true_communication(ad.read_h5ad(path), region_key="domain"), truth
    )
    # every gate acts everywhere when communication does not depend on distance
    plain = qs.sim.simulate(DESIGN, 50, rng=0)
    assert (qs.tl.true_communication(plain)["active_fraction"] == 1.0).all()


def test_scores_of_a_known_table_are_exact(tissue_data) -> None:
    rows = []
    for region in ("tumour", "outside"):
        for s in TYPES:
            for t in TYPES:
                for lig, rec in LR:
                    rows.append((s, t, lig, rec, region))
    table = pd.DataFrame(rows, columns=["source", "target", "ligand", "receptor", "domain"])
    truth = qs.tl.true_communication(tissue_data, region_key="domain")
    true_keys = set(
        map(
            tuple,
            truth.loc[
                truth["active_fraction"] > 0, ["source", "target", "ligand", "receptor", "domain"]
            ].to_numpy(),
        )
    )
    is_true = np.array([r in true_keys for r in rows])
    assert is_true.sum() == 2
    # a perfect ranking, and one call too many (the true pair in the silent domain)
    perfect = table.assign(
        prob=is_true * 0.5 + 0.1,
        pval=np.where(
            is_true
            | (table["domain"] == "outside")
            & (table["source"] == "CT1")
            & (table["target"] == "CT2")
            & (table["ligand"] == "g3"),
            0.0,
            1.0,
        ),
    )
    s = qs.tl.score_communication(tissue_data, perfect, region_key="domain")
    assert s["aupr"] == 1.0 and s["n_rows"] == 16 and s["n_true"] == 2
    assert s["n_called"] == 3
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == 1.0
    assert list(s["pairs"]["ligand"]) == ["g3", "g7"]
    assert list(s["pairs"]["precision"]) == [0.5, 1.0]
    # the true rows ranked last of their 16, tied: one threshold (as sklearn), 2/16
    worst = table.assign(prob=np.where(is_true, 0.0, 1.0))
    s = qs.tl.score_communication(tissue_data, worst, region_key="domain")
    assert s["aupr"] == pytest.approx(2 / 16)
    untied = table.assign(prob=np.where(is_true, np.where(table["ligand"] == "g3", 0.0, 0.1), 1.0))
    s = qs.tl.score_communication(tissue_data, untied, region_key="domain")
    assert s["aupr"] == pytest.approx((1 / 15 + 2 / 16) / 2)
    assert np.isnan(s["precision"]) and s["pval"] is None
    # a true row the result lacks is missed: it lowers recall and ranks last
    partial = perfect[~(is_true & (table["ligand"] == "g7"))]
    s = qs.tl.score_communication(tissue_data, partial, region_key="domain")
    assert s["recall"] == 0.5 and s["n_rows"] == 16
    assert s["pairs"].set_index("ligand").loc["g7", "aupr"] == pytest.approx(1 / 8)
    # a liana-style rank: lower is stronger
    ranked = table.assign(magnitude_rank=np.where(is_true, 0.01, 0.9))
    assert qs.tl.score_communication(tissue_data, ranked, region_key="domain")["aupr"] == 1.0
    # a threshold above the fraction of the tumour makes every row false
    high = qs.tl.score_communication(tissue_data, perfect, region_key="domain", min_active=0.99)
    assert high["n_true"] == 0 and np.isnan(high["aupr"])


def test_cellchat_ligrec_and_liana_per_domain_find_the_interacting_domain(tissue_data) -> None:
    import scanpy as sc

    cellchat = _by_domain(
        tissue_data,
        lambda sub: qs.tl.cellchat(sub, groupby="cell_type", n_perms=100, rng=0, copy=True),
    )
    scores = {"cellchat": qs.tl.score_communication(tissue_data, cellchat, region_key="domain")}
    norm = tissue_data.copy()
    sc.pp.normalize_total(norm, target_sum=1e4)
    sc.pp.log1p(norm)
    interactions = pd.DataFrame(LR, columns=["source", "target"])
    sq = pytest.importorskip("squidpy")
    scores["ligrec"] = qs.tl.score_communication(
        tissue_data,
        _by_domain(
            norm,
            lambda sub: sq.gr.ligrec(
                sub,
                "cell_type",
                interactions=interactions,
                n_perms=100,
                seed=0,
                copy=True,
                use_raw=False,
                threshold=0.0,
                show_progress_bar=False,
            ),
        ),
        region_key="domain",
    )
    li = pytest.importorskip("liana")

    def liana(sub: ad.AnnData) -> pd.DataFrame:
        li.mt.cellphonedb(
            sub,
            groupby="cell_type",
            resource=pd.DataFrame(LR, columns=["ligand", "receptor"]),
            expr_prop=0.0,
            use_raw=False,
            n_perms=100,
            seed=0,
            verbose=False,
        )
        return sub.uns["liana_res"]

    scores["liana"] = qs.tl.score_communication(
        tissue_data, _by_domain(norm, liana), region_key="domain"
    )
    for name, s in scores.items():
        assert s["n_rows"] == 16 and s["n_true"] == 2, name
        # the gate raises the receptor where it acts: the interacting domain ranks first
        assert s["aupr"] == 1.0, name
        # the genes are expressed in both domains, so every method also calls the silent one
        assert s["recall"] == 1.0 and s["precision"] == 0.5, name
    assert scores["ligrec"]["score"] == "means" and scores["liana"]["score"] == "lr_means"
    # one result over all cells, without regions: the programmed pairs of cell types
    whole = qs.tl.score_communication(
        tissue_data, qs.tl.cellchat(tissue_data, groupby="cell_type", n_perms=100, rng=0, copy=True)
    )
    assert whole["n_rows"] == 8 and whole["aupr"] == 1.0 and whole["precision"] == 1.0


def test_bad_results_name_the_field(tissue_data) -> None:
    good = pd.DataFrame(
        {"source": ["CT1"], "target": ["CT2"], "ligand": ["g3"], "receptor": ["g5"], "prob": [0.5]}
    )
    with pytest.raises(TypeError, match="result: expected a DataFrame"):
        qs.tl.score_communication(tissue_data, [1, 2])
    with pytest.raises(ValueError, match=r"result: the table lacks columns \['receptor'\]"):
        qs.tl.score_communication(tissue_data, good.drop(columns="receptor"))
    with pytest.raises(ValueError, match=r"result: a \{region: result\} dict needs region_key"):
        qs.tl.score_communication(tissue_data, {"tumour": good})
    with pytest.raises(KeyError, match=r"region_key: 'zone' is not a column of adata\.obs"):
        qs.tl.score_communication(tissue_data, good, region_key="zone")
    with pytest.raises(ValueError, match="result: region_key 'domain' is not a column"):
        qs.tl.score_communication(tissue_data, good, region_key="domain")
    with pytest.raises(ValueError, match="score: 'z' is not a column of the result"):
        qs.tl.score_communication(tissue_data, good, score="z")
    with pytest.raises(ValueError, match="score: the result has none of the score columns"):
        qs.tl.score_communication(tissue_data, good.drop(columns="prob"))
    with pytest.raises(ValueError, match=r"alpha: 1.0 is outside the allowed range \(0.0, 1.0\)"):
        qs.tl.score_communication(tissue_data, good, alpha=1.0)
    with pytest.raises(ValueError, match=r"min_active: 1.0 is outside the allowed range"):
        qs.tl.score_communication(tissue_data, good, min_active=1)
    with pytest.raises(ValueError, match="result: rows are repeated"):
        qs.tl.score_communication(tissue_data, pd.concat([good, good]))
    with pytest.raises(ValueError, match="no ligand-receptor edges"):
        qs.tl.score_communication(
            qs.sim.simulate(qs.sim.presets.romero2025(False), 20, rng=0), good
        )
    with pytest.raises(TypeError, match="adata: expected an AnnData"):
        qs.tl.true_communication(good)
