"""Benchmark of QBM-VAE (``qs.model.QBMVAE``) against scvi-tools' SCVI, LDVAE and AUTOZI and
against PCA, all on the same cells, each model trained in the same process for the same number
of epochs with the same minibatch size (128) and, where the data has one, the same batch key.

Models (every one at its own package's default architecture and learning rate; the latent sizes
are in the tables): ``QBMVAE(likelihood="nb")`` and ``QBMVAE(likelihood="mse")`` with
``--qbm-latent`` (32) binary units, 256 hidden, 2 layers, the ``gibbs`` prior sampler;
``scvi.model.SCVI``, ``scvi.model.LinearSCVI`` (LDVAE) and ``scvi.model.AUTOZI`` with
``--latent`` (10, scvi-tools' default) Gaussian units, 128 hidden, 1 layer; a control SCVI with
as many latent dimensions as QBM-VAE (so a difference is not just latent size); PCA (scanpy,
``--pcs`` (30) components of the log-normalised data: ``normalize_total(1e4)`` + ``log1p``).
The QBM-VAE latent is the posterior mean ``q`` in (0, 1)^n; the scvi-tools ones are the
posterior means.

Metrics per model:

- *s / epoch*: wall time of ``model.train(max_epochs=E)`` divided by ``E`` (it includes
  Lightning's set-up, the same for every model), and its ratio to SCVI's. For QBM-VAE the time
  spent in the prior's negative phase (``model.module.prior.negative_samples()``, the Ising
  sampler continuing its persistent chains once per training step) is timed separately by
  wrapping that method on the instance during training, so the table says how much of an epoch
  the sampler is.
- *bio* and *batch*: the aggregate bio-conservation and batch-correction scores of
  ``scib_metrics.benchmark.Benchmarker`` (default metric sets, unscaled, neighbours by
  pynndescent; the pre-integration embedding for PCR comparison is the PCA row's). Bio:
  isolated labels, KMeans NMI and ARI, silhouette label, cLISI; batch: BRAS, iLISI, kBET,
  graph connectivity, PCR comparison. On data without a batch key no batch score is computed
  (a constant batch column is given to the bio metrics). If the Benchmarker fails, a fallback
  computes silhouette_label and KMeans NMI/ARI (bio, mean of the three) and silhouette_batch and
  iLISI (batch, mean of the two) directly; the document says which path ran.
- *kNN* and *XGB*: 5-fold stratified cross-validation (shuffled, seed 0) of a k-nearest-neighbour
  classifier (k = 15, Euclidean) and of ``xgboost.XGBClassifier`` (100 trees, depth 6,
  ``n_jobs=2``, seed 0) predicting the label from the latent: accuracy and macro-F1, mean +- sd
  over the folds.

Datasets. With no DATA argument two run:

1. scanpy's ``pbmc68k_reduced`` (700 PBMCs, 765 genes, 10 types in ``obs["bulk_labels"]``; no
   batch, so batch correction is not scored there). Its ``X`` is scaled, so integer counts are
   rebuilt from ``.raw`` (log-normalised to 1e4 over *all* genes) and ``obs["n_counts"]`` (the
   cell's total over all genes): ``counts = round(expm1(raw.X) * n_counts / 1e4)``. The values
   before rounding are whole numbers up to float32 error (the largest distance to the nearest
   integer is printed into the document); the rebuilt rows sum to only part of ``n_counts``
   because ``.raw`` keeps 765 of the genes. The labels come from correlation with sorted bulk
   profiles and are noisy (e.g. 240 cells "Dendritic"), which caps every classifier's accuracy.
2. A simulated multi-batch dataset: ``qs.sim.simulate(qs.sim.presets.random_network(200, 4,
   rng=0), --sim-shots, rng=0, batches=3, batch_scale=0.3)`` (4 cell types x 500 cells,
   200 circuit genes + housekeeping genes, 3 batches that scale every gene's mean by a
   log-normal factor), label key ``cell_type``, batch key ``batch``. A cell expresses only its
   own type's genes plus the housekeeping genes, so the types are easy to tell apart; the
   interesting numbers there are the batch scores and the time per epoch.

With ``DATA.h5ad`` only that file runs: ``X`` (or ``--layer``) must hold raw integer counts of a
modest number of genes (select highly variable genes first), ``--label-key`` is required and
``--batch-key`` optional.

Targets (from the issue): QBM-VAE reaches at least SCVI's kNN accuracy on the real PBMCs, and
its epoch takes at most 1.5x SCVI's. The document states met / not met with the numbers. As one
seed's kNN accuracy moves by about 0.01 between training runs, the kNN target's models (QBM-VAE
nb and mse, SCVI) on the real data are refitted with ``--seeds`` seeds (default 3) and the target
is also judged on the seed means.

Usage: ``.venv/bin/python benchmarks/qbmvae.py`` (full run, also ``make bench``, which installs
the ``bench`` extra: scib-metrics, xgboost, scikit-learn; writes ``docs/benchmarks/qbmvae.md``)
or ``--quick`` (few epochs, small simulation; prints only unless ``--out``), or
``benchmarks/qbmvae.py DATA.h5ad --label-key KEY [--batch-key KEY] [--epochs N] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# idle OpenMP workers that spin steal the cores from the main thread on a shared machine and
# slow small torch steps (the Ising sampler's) most; sleeping workers avoid it, for every model
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402

from _common import (  # noqa: E402  # noqa: E402
    PBMC_LABEL,
    REPO,
    command,
    load_pbmc,
    machine,
    section,
    source_state,
)

DEFAULT_OUT = REPO / "docs" / "benchmarks" / "qbmvae.md"
SEED = 0
BATCH_SIZE = 128
FOLDS = 5
KNN_K = 15
XGB_TREES = 100
EPOCH_TARGET = 1.5
SIM_LABEL, SIM_BATCH = "cell_type", "batch"


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    for name in (
        "lightning",
        "lightning.pytorch",
        "lightning.fabric",
        "pytorch_lightning",
        "scvi",
        "jax",
        "absl",
        "numba",
        "pynndescent",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)


# --------------------------------------------------------------------------------------------
# data


def load_sim(shots: int) -> tuple:
    import qsimcells as qs

    design = qs.sim.presets.random_network(200, 4, rng=0)
    adata = qs.sim.simulate(design, shots, rng=0, batches=3, batch_scale=0.3, progress=False)
    adata.X = adata.X.astype(np.float32)
    del adata.layers["binary"]
    return adata, {}


def load_file(path: Path, layer: str | None, label_key: str, batch_key: str | None) -> tuple:
    import anndata as ad

    adata = ad.read_h5ad(path)
    X = adata.layers[layer] if layer else adata.X
    for key in (label_key, batch_key):
        if key is not None and key not in adata.obs:
            sys.exit(f"{path}: obs has no column {key!r}")
    obs_cols = [k for k in (label_key, batch_key) if k is not None]
    counts = ad.AnnData(
        X.astype(np.float32), obs=adata.obs[obs_cols].copy(), var=adata.var[[]].copy()
    )
    values = counts.X.data if hasattr(counts.X, "data") else counts.X
    if not np.array_equal(values, np.round(values)):
        sys.exit(f"{path}: {'layer ' + layer if layer else 'X'} does not hold integer counts")
    return counts, {}


# --------------------------------------------------------------------------------------------
# models


def _lognorm(adata):
    import scanpy as sc

    out = adata.copy()
    sc.pp.normalize_total(out, target_sum=1e4)
    sc.pp.log1p(out)
    return out


class _SamplerClock:
    """Wraps ``prior.negative_samples`` on one instance and adds up its wall time."""

    def __init__(self, prior) -> None:
        self.prior, self.seconds, self.calls = prior, 0.0, 0
        self._inner = prior.negative_samples

        def timed_negative_samples():
            t0 = time.perf_counter()
            try:
                return self._inner()
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1

        prior.negative_samples = timed_negative_samples

    def close(self) -> None:
        del self.prior.negative_samples  # back to the class's method


def _epoch_clock():
    """A Lightning callback that records the wall time of every training epoch."""
    from lightning.pytorch.callbacks import Callback

    class EpochClock(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t0 = 0.0

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.times.append(time.perf_counter() - self._t0)

    return EpochClock()


def model_specs(latent: int, qbm_latent: int) -> list[dict]:
    specs = [
        {
            "name": "QBMVAE (nb)",
            "kind": "qbmvae",
            "latent": qbm_latent,
            "latent_type": "binary",
            "kwargs": {"likelihood": "nb"},
        },
        {
            "name": "QBMVAE (mse)",
            "kind": "qbmvae",
            "latent": qbm_latent,
            "latent_type": "binary",
            "kwargs": {"likelihood": "mse"},
        },
        {
            "name": "SCVI",
            "kind": "scvi",
            "latent": latent,
            "latent_type": "Gaussian",
            "reference": True,
        },
        {"name": "LDVAE", "kind": "ldvae", "latent": latent, "latent_type": "Gaussian"},
        {"name": "AUTOZI", "kind": "autozi", "latent": latent, "latent_type": "Gaussian"},
    ]
    if qbm_latent != latent:
        specs.insert(
            3,
            {
                "name": f"SCVI ({qbm_latent}-d control)",
                "kind": "scvi",
                "latent": qbm_latent,
                "latent_type": "Gaussian",
            },
        )
    return specs


def fit_model(spec: dict, adata, batch_key: str | None, epochs: int, seed: int = SEED) -> dict:
    import scvi
    import torch

    import qsimcells as qs

    scvi.settings.seed = seed
    np.random.seed(seed)
    data = adata.copy()
    clock = None
    if spec["kind"] == "qbmvae":
        qs.model.QBMVAE.setup_anndata(data, batch_key=batch_key)
        model = qs.model.QBMVAE(data, n_latent=spec["latent"], seed=seed, **spec["kwargs"])
        clock = _SamplerClock(model.module.prior)
    else:
        cls = {
            "scvi": scvi.model.SCVI,
            "ldvae": scvi.model.LinearSCVI,
            "autozi": scvi.model.AUTOZI,
        }[spec["kind"]]
        cls.setup_anndata(data, batch_key=batch_key)
        model = cls(data, n_latent=spec["latent"])
    clock_epochs = _epoch_clock()
    t0, c0 = time.perf_counter(), time.process_time()
    model.train(
        max_epochs=epochs,
        batch_size=BATCH_SIZE,
        enable_progress_bar=False,
        accelerator="cpu",
        callbacks=[clock_epochs],
    )
    train_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    result = {
        "epoch_s": train_s / epochs,
        "epoch_cpu_s": cpu_s / epochs,
        "train_s": train_s,
        "epoch_median_s": float(np.median(clock_epochs.times)),
    }
    if clock is not None:
        clock.close()
        result["sampler_epoch_s"] = clock.seconds / epochs
        result["sampler_calls"] = clock.calls
    with torch.inference_mode():
        result["latent"] = np.asarray(model.get_latent_representation(), dtype=np.float32)
        if spec["kind"] == "qbmvae":  # the same model, its latent as logits
            result["latent_logit"] = np.asarray(
                model.get_latent_representation(representation="logit"), dtype=np.float32
            )
    if not np.isfinite(result["latent"]).all():
        raise RuntimeError(f"{spec['name']}: latent has NaN or infinite values")
    return result


def fit_pca(adata, n_pcs: int) -> dict:
    import scanpy as sc

    norm = _lognorm(adata)
    n_pcs = min(n_pcs, min(norm.shape) - 1)
    t0 = time.perf_counter()
    sc.pp.pca(norm, n_comps=n_pcs, random_state=SEED)
    return {
        "fit_s": time.perf_counter() - t0,
        "latent": norm.obsm["X_pca"].astype(np.float32),
        "latent_n": n_pcs,
    }


# --------------------------------------------------------------------------------------------
# metrics


def classify(latent: np.ndarray, labels: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from xgboost import XGBClassifier

    codes = np.unique(labels, return_inverse=True)[1]
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    scores: dict[str, list[float]] = {k: [] for k in ("knn_acc", "knn_f1", "xgb_acc", "xgb_f1")}
    for train, test in folds.split(latent, codes):
        knn = KNeighborsClassifier(n_neighbors=KNN_K).fit(latent[train], codes[train])
        pred = knn.predict(latent[test])
        scores["knn_acc"].append(accuracy_score(codes[test], pred))
        scores["knn_f1"].append(f1_score(codes[test], pred, average="macro"))
        # xgboost wants the classes of the training fold to be 0..k-1
        present, y_train = np.unique(codes[train], return_inverse=True)
        xgb = XGBClassifier(
            n_estimators=XGB_TREES,
            max_depth=6,
            learning_rate=0.3,
            tree_method="hist",
            n_jobs=2,
            random_state=SEED,
            verbosity=0,
        )
        xgb.fit(latent[train], y_train)
        pred = present[xgb.predict(latent[test])]
        scores["xgb_acc"].append(accuracy_score(codes[test], pred))
        scores["xgb_f1"].append(f1_score(codes[test], pred, average="macro"))
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1))) for k, v in scores.items()}


def scib_scores(
    adata, latents: dict[str, np.ndarray], label_key: str, batch_key: str | None, pre_key: str
) -> tuple[dict, str]:
    """Aggregate bio / batch scores per embedding, and which path computed them."""
    import anndata as ad

    obs = adata.obs[[label_key]].copy()
    obs[label_key] = obs[label_key].astype(str)
    bkey = batch_key or "_one_batch"
    obs[bkey] = adata.obs[batch_key].astype(str) if batch_key else "b0"
    holder = ad.AnnData(np.zeros((adata.n_obs, 1), np.float32), obs=obs)
    keys = {}
    for i, (name, z) in enumerate(latents.items()):
        keys[name] = f"emb{i}"
        holder.obsm[f"emb{i}"] = z
    try:
        from scib_metrics.benchmark import BatchCorrection, Benchmarker, BioConservation

        bench = Benchmarker(
            holder,
            batch_key=bkey,
            label_key=label_key,
            embedding_obsm_keys=list(keys.values()),
            bio_conservation_metrics=BioConservation(),
            batch_correction_metrics=BatchCorrection() if batch_key else None,
            pre_integrated_embedding_obsm_key=keys[pre_key],
            n_jobs=2,
            progress_bar=False,
        )
        bench.benchmark()
        table = bench.get_results(min_max_scale=False)
        out = {}
        for name, key in keys.items():
            row = table.loc[key]
            out[name] = {
                "bio": float(row["Bio conservation"]),
                "batch": float(row["Batch correction"]) if batch_key else None,
            }
        return out, "benchmarker"
    except Exception as err:
        print(
            f"  scib-metrics Benchmarker failed ({type(err).__name__}: {err}); computing "
            "silhouette/NMI/ARI/iLISI directly",
            flush=True,
        )
    import scib_metrics
    from scib_metrics.nearest_neighbors import pynndescent

    labels = obs[label_key].to_numpy()
    out = {}
    for name, z in latents.items():
        nmi_ari = scib_metrics.nmi_ari_cluster_labels_kmeans(z, labels)
        bio = float(
            np.mean([scib_metrics.silhouette_label(z, labels), nmi_ari["nmi"], nmi_ari["ari"]])
        )
        batch = None
        if batch_key:
            batches = obs[bkey].to_numpy()
            neigh = pynndescent(z, n_neighbors=90, random_state=SEED, n_jobs=2)
            batch = float(
                np.mean(
                    [
                        scib_metrics.silhouette_batch(z, labels, batches),
                        scib_metrics.ilisi_knn(neigh, batches),
                    ]
                )
            )
        out[name] = {"bio": bio, "batch": batch}
    return out, "fallback"


# --------------------------------------------------------------------------------------------
# one dataset


def run_dataset(
    title: str,
    adata,
    label_key: str,
    batch_key: str | None,
    epochs: int,
    latent: int,
    qbm_latent: int,
    n_pcs: int,
    info: dict,
) -> dict:
    n_batches = adata.obs[batch_key].nunique() if batch_key else 1
    print(
        f"[{title}] {adata.n_obs:,} cells x {adata.n_vars:,} genes, "
        f"{adata.obs[label_key].nunique()} labels ({label_key}), "
        f"{n_batches} batch(es){f' ({batch_key})' if batch_key else ''}, {epochs} epochs",
        flush=True,
    )
    labels = adata.obs[label_key].astype(str).to_numpy()
    rows = []
    for spec in model_specs(latent, qbm_latent):
        row = {
            "name": spec["name"],
            "latent_n": spec["latent"],
            "latent_type": spec["latent_type"],
            "reference": spec.get("reference", False),
        }
        try:
            row.update(fit_model(spec, adata, batch_key, epochs))
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"
            print(f"  {spec['name']}: FAILED {row['error']}", flush=True)
            rows.append(row)
            continue
        extra = (
            f", sampler {row['sampler_epoch_s']:.3f} s ({row['sampler_calls']} calls)"
            if "sampler_epoch_s" in row
            else ""
        )
        print(
            f"  {spec['name']:24s} {row['epoch_s']:.3f} s/epoch (median epoch "
            f"{row['epoch_median_s']:.3f} s, CPU {row['epoch_cpu_s']:.3f} s){extra}",
            flush=True,
        )
        rows.append(row)
        if "latent_logit" in row:  # one more row: the same fit, scored on its logits
            rows.append(
                {
                    **row,
                    "name": logit_name(spec["name"]),
                    "latent_type": "binary (logits)",
                    "latent": row.pop("latent_logit"),
                }
            )
    pca = fit_pca(adata, n_pcs)
    rows.append(
        {
            "name": "PCA",
            "latent_n": pca["latent_n"],
            "latent_type": "linear",
            "latent": pca["latent"],
            "fit_s": pca["fit_s"],
            "reference": False,
        }
    )
    ok = [r for r in rows if "latent" in r]
    t0 = time.perf_counter()
    scib, scib_path = scib_scores(
        adata, {r["name"]: r["latent"] for r in ok}, label_key, batch_key, "PCA"
    )
    print(f"  scib-metrics ({scib_path}) {time.perf_counter() - t0:.0f} s", flush=True)
    ref = next((r for r in rows if r["reference"] and "epoch_s" in r), None)
    for r in ok:
        r.update(scib[r["name"]])
        r.update(classify(r["latent"], labels))
        if ref is not None and "epoch_s" in r:
            r["ratio"] = r["epoch_s"] / ref["epoch_s"]
            r["cpu_ratio"] = r["epoch_cpu_s"] / ref["epoch_cpu_s"]
            r["median_ratio"] = r["epoch_median_s"] / ref["epoch_median_s"]
        del r["latent"]
    print(text_table(rows), flush=True)
    return {
        "title": title,
        "n_obs": adata.n_obs,
        "n_vars": adata.n_vars,
        "n_labels": adata.obs[label_key].nunique(),
        "label_key": label_key,
        "batch_key": batch_key,
        "n_batches": n_batches,
        "epochs": epochs,
        "rows": rows,
        "scib_path": scib_path,
        "info": info,
    }


#: the models refitted with further seeds for the kNN target
REPEATED = ("QBMVAE (nb)", "QBMVAE (mse)", "SCVI")


def logit_name(name: str) -> str:
    """The row of a QBM-VAE fit scored on the logits of its posterior means."""
    return name.replace(")", ", logit latent)")


def seed_repeats(ds: dict, adata, n_seeds: int, latent: int, qbm_latent: int) -> None:
    """Refit the target's models with seeds 1..n_seeds-1 (same folds) and store, per model, the
    kNN accuracy of every seed (seed 0 from the main table) in ``ds["repeats"]``."""
    labels = adata.obs[ds["label_key"]].astype(str).to_numpy()
    by_name = {r["name"]: r for r in ds["rows"]}
    repeats = {}
    for spec in model_specs(latent, qbm_latent):
        if spec["name"] not in REPEATED or "knn_acc" not in by_name.get(spec["name"], {}):
            continue
        accs = [by_name[spec["name"]]["knn_acc"][0]]
        logit = logit_name(spec["name"])
        logit_accs = (
            [by_name[logit]["knn_acc"][0]]
            if spec["kind"] == "qbmvae" and "knn_acc" in by_name.get(logit, {})
            else None
        )
        for seed in range(1, n_seeds):
            fitted = fit_model(spec, adata, ds["batch_key"], ds["epochs"], seed=seed)
            accs.append(classify(fitted["latent"], labels)["knn_acc"][0])
            if logit_accs is not None:
                logit_accs.append(classify(fitted["latent_logit"], labels)["knn_acc"][0])
        repeats[spec["name"]] = accs
        if logit_accs is not None:
            repeats[logit] = logit_accs
        for name, values in ((spec["name"], accs), (logit, logit_accs)):
            if values is not None:
                print(f"  seeds {name:26s} kNN " + " ".join(f"{a:.3f}" for a in values), flush=True)
    ds["repeats"] = repeats


def repeats_section(ds: dict) -> list[str]:
    reps = ds.get("repeats") or {}
    if not reps:
        return []
    n = len(next(iter(reps.values())))
    lines = [
        "",
        f"**Seeds.** kNN accuracy (same folds) of the target's models trained with "
        f"{n} seeds (0..{n - 1}; seed 0 is the table above): mean +- sd over seeds, and "
        "each seed.",
        "",
        "| model | kNN acc over seeds | per seed |",
        "|---|---:|---|",
    ]
    for name, accs in reps.items():
        lines.append(
            f"| {name} | {np.mean(accs):.3f} +- {np.std(accs, ddof=1):.3f} | "
            + ", ".join(f"{a:.3f}" for a in accs)
            + " |"
        )
    if "SCVI" in reps:
        ref = np.asarray(reps["SCVI"])
        sd = np.std(ref, ddof=1)
        for name in [n for n in reps if n.startswith("QBMVAE")]:
            diff = np.asarray(reps[name]) - ref
            met = "met" if diff.mean() >= -sd else "not met"
            lines.append("")
            lines.append(
                f"- **{name}** over seeds: {np.mean(reps[name]):.3f} vs SCVI's "
                f"{ref.mean():.3f} (difference {diff.mean():+.3f}, SCVI's sd over seeds "
                f"{sd:.3f}); target >= SCVI within one sd: **{met}**."
            )
    return lines


# --------------------------------------------------------------------------------------------
# output


def _pm(v) -> str:
    return f"{v[0]:.3f} +- {v[1]:.3f}"


def _cells(r: dict) -> list[str]:
    if "error" in r:
        return [r["name"], f"{r['latent_n']} {r['latent_type']}", "failed", *[""] * 9]
    epoch = f"{r['epoch_s']:.3f}" if "epoch_s" in r else f"(fit {r['fit_s']:.2f} s)"
    if "sampler_epoch_s" in r:
        epoch += f" (sampler {r['sampler_epoch_s']:.3f})"
    ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
    cpu = f"{r['epoch_cpu_s']:.3f} ({r['cpu_ratio']:.2f}x)" if "cpu_ratio" in r else "-"
    median = f"{r['epoch_median_s']:.3f} ({r['median_ratio']:.2f}x)" if "median_ratio" in r else "-"
    batch = f"{r['batch']:.3f}" if r.get("batch") is not None else "-"
    return [
        r["name"],
        f"{r['latent_n']} {r['latent_type']}",
        epoch,
        ratio,
        median,
        cpu,
        f"{r['bio']:.3f}",
        batch,
        _pm(r["knn_acc"]),
        _pm(r["knn_f1"]),
        _pm(r["xgb_acc"]),
        _pm(r["xgb_f1"]),
    ]


HEADER = [
    "model",
    "latent",
    "s / epoch",
    "vs SCVI",
    "median epoch (vs SCVI)",
    "CPU s / epoch (vs SCVI)",
    "bio",
    "batch",
    "kNN acc",
    "kNN F1",
    "XGB acc",
    "XGB F1",
]


def text_table(rows: list[dict]) -> str:
    cells = [HEADER] + [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    return "\n".join(
        "  " + "  ".join(c[i].ljust(widths[i]) for i in range(len(HEADER))) for c in cells
    )


def md_table(rows: list[dict]) -> list[str]:
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return lines


def _row(ds: dict, name: str) -> dict | None:
    return next((r for r in ds["rows"] if r["name"] == name and "error" not in r), None)


METRICS = (
    ("knn_acc", "kNN accuracy"),
    ("knn_f1", "kNN macro-F1"),
    ("xgb_acc", "XGB accuracy"),
    ("xgb_f1", "XGB macro-F1"),
    ("bio", "bio score"),
    ("batch", "batch score"),
)


def _value(r: dict, key: str) -> float | None:
    v = r.get(key)
    return v[0] if isinstance(v, tuple) else v


def verdict(ds: dict, real: bool) -> list[str]:
    """Plain sentences: the targets, and where QBM-VAE wins and loses."""
    ref = _row(ds, "SCVI")
    out = []
    qbms = [r for r in ds["rows"] if r["name"].startswith("QBMVAE")]
    for q in qbms:
        if "error" in q:
            out.append(f"{q['name']} failed: `{q['error']}`.")
    if ref is None:
        return [*out, "SCVI did not train, so the targets cannot be checked."]
    ok = [r for r in ds["rows"] if "error" not in r]
    for q in (q for q in qbms if "error" not in q):
        parts = []
        if real:
            met = q["knn_acc"][0] >= ref["knn_acc"][0]
            parts.append(
                f"kNN accuracy {q['knn_acc'][0]:.3f} vs SCVI's {ref['knn_acc'][0]:.3f}"
                f" (target >= SCVI: **{'met' if met else 'not met'}**)"
            )
        met = q["ratio"] <= EPOCH_TARGET
        split = ""
        if "sampler_epoch_s" in q:
            share = q["sampler_epoch_s"] / q["epoch_s"]
            rest = (q["epoch_s"] - q["sampler_epoch_s"]) / ref["epoch_s"]
            split = (
                f"; the Ising sampler takes {q['sampler_epoch_s']:.3f} s of it "
                f"({share:.0%}), the rest alone is {rest:.2f}x SCVI's"
            )
        med_met = q["median_ratio"] <= EPOCH_TARGET
        parts.append(
            f"epoch {q['epoch_s']:.3f} s = {q['ratio']:.2f}x SCVI's "
            f"{ref['epoch_s']:.3f} s (target <= {EPOCH_TARGET}x: "
            f"**{'met' if met else 'not met'}**{split}; median epoch "
            f"{q['median_ratio']:.2f}x, CPU time {q['cpu_ratio']:.2f}x"
            + (
                ""
                if med_met == met
                else f", the median {'meets' if med_met else 'misses'} the target"
            )
            + ")"
        )
        above, same, below, best = [], [], [], []
        for key, label in METRICS:
            val, rval = _value(q, key), _value(ref, key)
            if val is None or rval is None:
                continue
            (above if val > rval else same if val == rval else below).append(
                f"{label} {val:.3f} vs {rval:.3f}"
            )
            scored = [r for r in ok if _value(r, key) is not None]
            top_value = max(_value(r, key) for r in scored)
            tops = [r["name"] for r in scored if _value(r, key) == top_value]
            if val == top_value:
                best.append(
                    label
                    + (
                        f" (tied with {', '.join(t for t in tops if t != q['name'])})"
                        if len(tops) > 1
                        else ""
                    )
                )
            elif key in ("knn_acc", "bio", "batch"):
                best.append(f"not best on {label}: best is {tops[0]} {top_value:.3f}")
        parts.append("above SCVI on " + (", ".join(above) if above else "nothing"))
        parts.append("below SCVI on " + (", ".join(below) if below else "nothing"))
        if same:
            parts.append("equal to SCVI on " + ", ".join(same))
        wins = [b for b in best if not b.startswith("not best")]
        misses = [b[len("not best on ") :] for b in best if b.startswith("not best")]
        if wins:
            parts.append("best of all models on " + ", ".join(wins))
        if misses:
            parts.append("; ".join(misses))
        out.append(f"**{q['name']}**: " + "; ".join(parts) + ".")
    return out


def markdown(
    cmd: str, info: dict, source: str, source_after: str, datasets: list[dict], quick: bool, args
) -> str:
    lines = [
        "# Benchmark: QBM-VAE vs scvi-tools models and PCA",
        "",
        "Generated by `benchmarks/qbmvae.py` (`make bench` runs it); every number below comes "
        "from that run, and every ratio compares two timings taken in the same process.",
        "",
        f"- Command: `{cmd}`" + (" (quick smoke run)" if quick else ""),
        f"- Machine: {info['cores']} cores ({info['cpu']}), {info['memory']} RAM; Python "
        f"{info['python']}, torch {info['torch']} (CPU, {info['threads']} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), scvi-tools "
        f"{info['scvi']}, scanpy {info['scanpy']}, scib-metrics {info['scib_metrics']}, "
        f"xgboost {info['xgboost']}, scikit-learn {info['sklearn']}",
        f"- Date: {info['date']}",
        f"- Source: {source}"
        + (
            ""
            if source_after == source
            else f" at the start; {source_after} at the end (src/ changed while the benchmark ran)"
        ),
        "",
        "## What is measured",
        "",
        "All models see the same cells and genes (integer counts; PCA gets them "
        "log-normalised), train for the same number of epochs with minibatches of "
        f"{BATCH_SIZE}, no early stopping, the batch key where the data has one, and seed "
        f"{SEED}. Each model keeps its package's default architecture and learning rate: "
        f"QBM-VAE {args.qbm_latent} binary latent units (the Boltzmann machine's spins), 256 "
        "hidden, 2 layers, lr 1e-2 (BM 1e-3), 256 persistent `gibbs` chains; SCVI, LDVAE "
        f"(`LinearSCVI`) and AUTOZI {args.latent} Gaussian latent dimensions (scvi-tools' "
        "default), 128 hidden, 1 layer, lr 1e-3. A second SCVI with as many latent dimensions "
        "as QBM-VAE is a control for latent size. PCA: "
        f"{args.pcs} components of `normalize_total(1e4)` + `log1p`. The QBM-VAE latent is the "
        "posterior Bernoulli mean q in (0, 1).",
        "",
        "- *s / epoch*: wall time of `train(max_epochs=E)` / E (Lightning's set-up included, "
        "for every model); *vs SCVI*: the ratio to the SCVI row. For QBM-VAE the part spent in "
        "the prior's negative phase (`model.module.prior.negative_samples()`, the Ising sampler "
        "continuing 256 persistent chains once per training step) is shown in brackets. PCA: "
        "the time of `sc.pp.pca`. *Median epoch*: the median wall time of one training epoch "
        "(a Lightning callback), robust to short bursts of other work on the machine; *CPU s "
        "/ epoch*: the process's CPU time over the training (both with their ratio to SCVI's). "
        f"Load average (1 min) {info['load_start']} at the start and {info['load_end']} at the "
        f"end on {info['cores']} cores"
        + (
            ": other work shared the machine, so rows trained at different times may be "
            "slowed differently; compare rows with care."
            if max(float(info["load_start"]), float(info["load_end"])) > 1.2 * info["cores"]
            else "."
        ),
        "- *bio*, *batch*: " + _scib_text(datasets),
        f"- *kNN*, *XGB*: {FOLDS}-fold stratified cross-validation (shuffled, seed {SEED}) of a "
        f"k-nearest-neighbour classifier (k = {KNN_K}) and `xgboost.XGBClassifier` "
        f"({XGB_TREES} trees, depth 6, `n_jobs=2`) predicting the label from the latent; "
        "accuracy and macro-F1, mean +- sd over folds.",
        "",
        f"Targets (issue): QBM-VAE's kNN accuracy on the real PBMCs at least SCVI's, and an "
        f"epoch at most {EPOCH_TARGET}x SCVI's.",
    ]
    for ds in datasets:
        real = ds["title"].startswith("pbmc68k_reduced") or ds.get("real", False)
        lines += [
            "",
            f"## {ds['title']}",
            "",
            f"{ds['n_obs']:,} cells x {ds['n_vars']:,} genes, {ds['n_labels']} labels "
            f"(`{ds['label_key']}`), "
            + (
                f"{ds['n_batches']} batches (`{ds['batch_key']}`)"
                if ds["batch_key"]
                else "no batch (batch correction not scored)"
            )
            + f", {ds['epochs']} epochs."
            + _data_note(ds),
            "",
        ]
        lines += md_table(ds["rows"])
        lines += ["", *(f"- {s}" for s in verdict(ds, real))]
        lines += repeats_section(ds)
    return "\n".join(lines) + "\n"


def _scib_text(datasets: list[dict]) -> str:
    paths = {d["scib_path"] for d in datasets}
    text = ""
    if "benchmarker" in paths:
        text += (
            "the aggregate *Bio conservation* and *Batch correction* scores of "
            "`scib_metrics.benchmark.Benchmarker` (default metrics, unscaled, pynndescent "
            "neighbours; the PCA row is the pre-integration embedding of PCR comparison). "
            "Bio = mean of isolated labels, KMeans NMI, KMeans ARI, silhouette label, "
            "cLISI; batch = mean of BRAS, iLISI, kBET, graph connectivity, PCR "
            "comparison. Higher is better."
        )
    if "fallback" in paths:
        text += (
            " The Benchmarker failed on "
            + ", ".join(d["title"] for d in datasets if d["scib_path"] == "fallback")
            + "; there bio = mean of silhouette label, KMeans NMI and ARI, and batch = "
            "mean of silhouette batch and iLISI, computed directly with scib-metrics."
        )
    return text.strip()


def _data_note(ds: dict) -> str:
    info = ds["info"]
    if "max_off" in info:
        return (
            " Counts rebuilt as `round(expm1(raw.X) * n_counts / 1e4)`: before rounding the "
            f"values lie within {info['max_off']:.3f} of a whole number (mean "
            f"{info['mean_off_nonzero']:.1e} over non-zero entries, float32 error), "
            f"{info['nonzero']:.0%} of entries non-zero; the 765 genes of `.raw` hold a "
            f"median {info['share_of_n_counts']:.0%} of `n_counts`. The `bulk_labels` come "
            "from correlation with sorted bulk profiles and are noisy, which caps every "
            "classifier."
        )
    if ds["title"].startswith("simulated"):
        return (
            " A cell expresses only its own type's circuit genes plus the housekeeping "
            "genes, so the types are easy to separate; the batch scores and the time per "
            "epoch are the informative columns here."
        )
    return ""


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "data",
        nargs="?",
        type=Path,
        help="an .h5ad with raw counts "
        "(default: pbmc68k_reduced and a simulated multi-batch dataset)",
    )
    parser.add_argument("--label-key", help="obs column of the labels (required with DATA)")
    parser.add_argument("--batch-key", help="obs column of the batches (optional)")
    parser.add_argument("--layer", help="layer of DATA holding the counts (default: X)")
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs for every model (default 100; --quick 5)"
    )
    parser.add_argument(
        "--latent", type=int, default=10, help="latent size of the Gaussian models (default 10)"
    )
    parser.add_argument(
        "--qbm-latent", type=int, default=32, help="binary latent units of QBM-VAE (default 32)"
    )
    parser.add_argument("--pcs", type=int, default=30, help="PCA components (default 30)")
    parser.add_argument(
        "--sim-shots",
        type=int,
        default=None,
        help="cells per type of the simulated dataset (default 500; --quick 150)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds for the kNN target's models on the real data (default 3; --quick 1)",
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--out", type=Path, default=None, help="markdown output")
    args = parser.parse_args(argv)
    if args.data is not None and not args.label_key:
        parser.error("--label-key is required with DATA")
    epochs = args.epochs or (5 if args.quick else 100)
    shots = args.sim_shots or (150 if args.quick else 500)
    n_seeds = args.seeds or (1 if args.quick else 3)

    _quiet()
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    source = source_state()
    import scvi
    import torch

    scvi.settings.seed = SEED
    scvi.settings.verbosity = logging.ERROR
    scvi.settings.progress_bar_style = "tqdm"
    _quiet()
    common = {
        "epochs": epochs,
        "latent": args.latent,
        "qbm_latent": args.qbm_latent,
        "n_pcs": args.pcs,
    }
    datasets = []
    if args.data is None:
        adata, info = load_pbmc()
        datasets.append(
            run_dataset(
                "pbmc68k_reduced (real PBMCs)", adata, PBMC_LABEL, None, info=info, **common
            )
        )
        seed_repeats(datasets[-1], adata, n_seeds, args.latent, args.qbm_latent)
        adata, info = load_sim(shots)
        datasets.append(
            run_dataset(
                "simulated, 3 batches (qs.sim random_network(200, 4))",
                adata,
                SIM_LABEL,
                SIM_BATCH,
                info=info,
                **common,
            )
        )
    else:
        adata, info = load_file(args.data, args.layer, args.label_key, args.batch_key)
        ds = run_dataset(args.data.name, adata, args.label_key, args.batch_key, info=info, **common)
        ds["real"] = True
        seed_repeats(ds, adata, n_seeds, args.latent, args.qbm_latent)
        datasets.append(ds)
    print(f"total {time.perf_counter() - t_start:.0f} s", flush=True)
    for ds in datasets:
        for s in verdict(ds, ds["title"].startswith("pbmc") or ds.get("real", False)):
            print(f"  [{ds['title']}] {s}")
    out = args.out or (None if args.quick or args.data is not None else DEFAULT_OUT)
    if out is not None:
        info = machine(("torch", "scvi", "scanpy", "scib_metrics", "xgboost", "sklearn"))
        info["threads"] = torch.get_num_threads()
        info["load_start"], info["load_end"] = f"{load_start:.1f}", f"{os.getloadavg()[0]:.1f}"
        text = markdown(
            command(__file__, argv), info, source, source_state(), datasets, args.quick, args
        )
        # The DE section is benchmarks/qbmvae_de.py's: keep what it last wrote.
        kept = section(out, "qbmvae_de")
        text = text + "\n" + kept + "\n" if kept else text
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")


if __name__ == "__main__":
    main(sys.argv[1:])
