"""Do the models learn a planted edge? Out-of-sample accuracy vs the majority-class rate.

For every (data set, encoding, size, model): ``train_model`` over ``--folds`` purged
walk-forward folds with the same budget for all (``--train`` most recent samples x
``--epochs``), the test predictions of all folds pooled, accuracy with a block-bootstrap
95 % interval beside the majority rate of the same test bars, the number of folds in which
the model collapsed (one class > 90 % of predictions) and the learning-curve diagnosis.
Two sign-blind figures beside it (pooled, and per fold in ``--json``): ``hold vs move``
(accuracy with buy and sell merged) and ``buy/sell at chance`` (expected accuracy when each
predicted move is called buy or sell by a fair coin). GASF cannot tell them apart (a mirrored
window gives the same image), so on GASF these, not the collapse flag, say whether a net learned.

Data: ``shipped`` = ``sample_data/planted_5m.csv``; ``seedN`` = a planted set generated
with seed N (same generator and settings, other draws). A model "finds the edge" when
the lower end of its interval is above the majority rate.

    python benchmarks/bench_learning.py --jobs 2 --out benchmarks/RESULTS_learning.md
    python benchmarks/bench_learning.py --models compact --sizes 32 --kinds candles --data shipped \\
        --recipe '{"lr": 1e-3}' --model-kwargs '{"zero_init_last_bn": false}'      # one experiment
    python benchmarks/bench_learning.py --grid experiments.json --json out.json      # many (docs/training.md)

``--grid``: a JSON list of ``{"tag": ..., "recipe": {TrainConfig overrides}, "model_kwargs": {...},
"models": [...]}`` entries, each run on the selected data/encodings/sizes (models default to ``--models``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("small_cnn", "compact", "efficientnet_nano", "efficientnet_b0")


def _frame(data: str):
    from effnet_trading.imaging import load_ohlcv

    if data == "shipped":
        return load_ohlcv(ROOT / "sample_data" / "planted_5m.csv")
    if data.startswith("seed"):
        from effnet_trading.imaging.synthetic import SampleConfig, make_planted

        return make_planted(SampleConfig(seed=int(data[4:])))[0]
    return load_ohlcv(data)


def _spec(kind: str, size: int, window: int):
    from effnet_trading.imaging import ImageSpec

    return ImageSpec(kind, window=window, size=(size, size))


def _sign_blind(y: np.ndarray, pred: np.ndarray, class_names) -> dict:
    """What a model that cannot tell "buy" from "sell" (GASF: a mirrored window gives the same image) can be
    judged on: ``hold_vs_move`` accuracy (buy and sell merged) and ``split_at_chance`` accuracy, the expected
    accuracy when every predicted move is called buy or sell by a fair coin."""
    if tuple(class_names) != ("sell", "hold", "buy"):
        return {}
    hold = class_names.index("hold")
    both_hold = (pred == hold) & (y == hold)
    both_move = (pred != hold) & (y != hold)
    return {
        "hold_vs_move": float(np.mean(both_hold | both_move)),
        "split_at_chance": float(np.mean(both_hold) + 0.5 * np.mean(both_move)),
    }


class _FoldsDone(Exception):
    """Raised by the probe when the folds asked for (``--only-folds``) are done."""


def _probe_epochs(store: list, only_folds: int | None = None) -> None:
    """Instrument ``train_model`` (this process only): after every epoch, keep the scored weights'
    validation and test probabilities, so that every checkpoint-selection rule can be judged from one run.
    ``only_folds``: stop before fold ``only_folds`` starts (the first folds of the full run, same splits)."""
    from effnet_trading.model_zoo import train as tr

    plain = tr._Fold._epoch

    def _epoch(self):
        if only_folds is not None and self.split.fold >= only_folds:
            raise _FoldsDone
        row = plain(self)
        sp, bs = self.split, self.cfg.batch_size
        store.append(
            {
                "fold": sp.fold,
                "epoch": self.epoch + 1,
                "valid": tr._predict(self.scored, self.ds, sp.valid, self.dev, bs, self.amp, self.nhwc),
                "test": tr._predict(self.scored, self.ds, sp.test, self.dev, bs, self.amp, self.nhwc),
                "yv": self.ds.labels[sp.valid].astype(int),
                "yt": self.ds.labels[sp.test].astype(int),
            }
        )
        return row

    tr._Fold._epoch = _epoch


def _nll(y: np.ndarray, p: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-15, 1))))


SELECT_RULES = ("val_loss", "val_acc", "val_loss_T", "val_loss_from_2", "last")


def _selections(store: list, class_names, horizon: int) -> dict:
    """Per epoch: validation loss / accuracy / loss after a fitted temperature, test accuracy and
    sign-blind figures; then the pooled test accuracy of the epoch each selection rule keeps per fold.
    The rules named like ``TrainConfig.select_by`` are what training restores under that setting
    (``val_loss_T`` by default; ``val_loss`` was the rule until 2026-11-30)."""
    from effnet_trading.model_zoo.calibration import apply_temperature, fit_temperature
    from effnet_trading.model_zoo.metrics import bootstrap_ci

    epochs = []
    for e in store:
        t = fit_temperature(e["yv"], e["valid"])
        pred = e["test"].argmax(1)
        epochs.append(
            {
                "fold": e["fold"],
                "epoch": e["epoch"],
                "val_loss": _nll(e["yv"], e["valid"]),
                "val_acc": float(np.mean(e["valid"].argmax(1) == e["yv"])),
                "val_loss_T": _nll(e["yv"], apply_temperature(e["valid"], t)),
                "temperature": float(t),
                "test_acc": float(np.mean(pred == e["yt"])),
                "test_top_share": float(np.bincount(pred, minlength=len(class_names)).max() / len(pred)),
                **{"test_" + k: v for k, v in _sign_blind(e["yt"], pred, class_names).items()},
            }
        )
    out = {"epochs": epochs}
    folds = sorted({e["fold"] for e in store})
    for rule in SELECT_RULES:
        kept = []
        for f in folds:
            rows = [(i, r) for i, r in enumerate(epochs) if r["fold"] == f]
            if rule == "last":
                i = rows[-1][0]
            elif rule == "val_acc":
                i = max(rows, key=lambda x: (x[1]["val_acc"], -x[1]["val_loss"]))[0]
            else:
                cand = [x for x in rows if x[1]["epoch"] >= 2] or rows if rule == "val_loss_from_2" else rows
                key = "val_loss_T" if rule == "val_loss_T" else "val_loss"
                i = min(cand, key=lambda x: x[1][key])[0]
            kept.append(i)
        y = np.concatenate([store[i]["yt"] for i in kept])
        pred = np.concatenate([store[i]["test"].argmax(1) for i in kept])
        out[rule] = {
            "epochs": [epochs[i]["epoch"] for i in kept],
            "accuracy": bootstrap_ci(y, pred, "accuracy", n=1000, block=horizon, seed=0),
            "collapsed_folds": int(sum(epochs[i]["test_top_share"] > 0.9 for i in kept)),
            **_sign_blind(y, pred, class_names),
        }
    return out


def run_one(job: dict) -> dict:
    """One (data, kind, size, model, recipe) cell; returns a JSON-ready record."""
    import torch

    store: list = []
    if job.get("probe") or job.get("only_folds"):
        _probe_epochs(store, job.get("only_folds"))

    torch.set_num_threads(job.get("threads", 1))
    from effnet_trading.model_zoo.dataset import ImageDataset
    from effnet_trading.model_zoo.metrics import bootstrap_ci
    from effnet_trading.model_zoo.train import TrainConfig, train_model

    spec = _spec(job["kind"], job["size"], job["window"])
    frame = _frame(job["data"])
    ds = ImageDataset.build(frame, spec, job["horizon"], cache_dir=job.get("cache_dir"))
    if job.get("float_inputs"):  # experiment: skip the uint8 quantisation (images kept as float32 x 255)
        from effnet_trading.imaging import iter_render

        imgs = np.concatenate([im for _, im in iter_render(spec, frame, ds.ends, dtype=np.float32)])
        ds.images = imgs * np.float32(255.0)
    recipe = {
        "epochs": job["epochs"],
        "folds": job["folds"],
        "max_train_samples": job["train"],
        "seed": job["seed"],
    } | job["recipe"]
    cfg = TrainConfig(
        model=job["model"],
        spec=spec,
        horizon=job["horizon"],
        progress=False,
        **recipe,
        model_kwargs=dict(job["model_kwargs"]),
    )
    t0 = time.perf_counter()
    try:
        res = train_model(frame, cfg, dataset=ds)
    except _FoldsDone:  # --only-folds: a record from the probe alone
        return _probe_record(job, store, ds, time.perf_counter() - t0, cfg.select_by)
    seconds = time.perf_counter() - t0
    folds = res.folds
    ys = np.concatenate([ds.labels[t] for t, _ in res.fold_test]).astype(int)
    preds = np.concatenate([p.argmax(1) for _, p in res.fold_test]).astype(int)
    acc = bootstrap_ci(ys, preds, "accuracy", n=1000, block=job["horizon"], seed=0)
    counts = np.bincount(ys, minlength=3)
    sign_blind = [_sign_blind(ds.labels[t].astype(int), pr.argmax(1), ds.class_names) for t, pr in res.fold_test]
    return {
        **_head(job),
        "n_test": int(len(ys)),
        "accuracy": acc,
        "majority_rate": float(counts.max() / counts.sum()),
        **_sign_blind(ys, preds, ds.class_names),  # pooled over the folds
        "per_fold": [
            {
                "fold": f["fold"],
                "accuracy": f["test"]["accuracy"],
                "majority_rate": f["test"]["majority_rate"],
                "collapsed": f["test"]["collapsed"],
                "best_epoch": f["best_epoch"],
                "epochs_run": f["epochs_run"],
                "diagnosis": f["diagnosis"]["state"],
                "pred_shares": f["test"]["pred_shares"],
                "true_shares": f["test"]["true_shares"],
                **sb,
            }
            for f, sb in zip(folds, sign_blind)
        ],
        "collapsed_folds": int(sum(f["test"]["collapsed"] for f in folds)),
        "architecture": res.metrics["architecture"],
        "seconds": seconds,
        "curves": {str(k): v for k, v in res.metrics["curves"].items()},
        **({"selection": _selections(store, ds.class_names, job["horizon"])} if job.get("probe") else {}),
    }


def _head(job: dict) -> dict:
    """The fields that name a cell in its record."""
    keys = ("tag", "data", "kind", "size", "model", "recipe", "model_kwargs")
    return {k: job[k] for k in keys} | {"float_inputs": bool(job.get("float_inputs"))}


def _probe_record(job: dict, store: list, ds, seconds: float, select_by: str) -> dict:
    """The record of an ``--only-folds`` run: the epochs the run's ``select_by`` keeps are what training
    restores, so their test predictions are the cell's figures."""
    sel = _selections(store, ds.class_names, job["horizon"])
    kept = sel[select_by]["epochs"]
    ys = np.concatenate([e["yt"] for e in store if e["epoch"] == 1])
    counts = np.bincount(ys, minlength=3)
    per_fold = []
    for f, ep in enumerate(kept):
        row = next(r for r in sel["epochs"] if r["fold"] == f and r["epoch"] == ep)
        per_fold.append(
            {
                "fold": f,
                "accuracy": row["test_acc"],
                "collapsed": row["test_top_share"] > 0.9,
                "best_epoch": ep,
                "diagnosis": "n/a (--only-folds)",
            }
        )
    return {
        **_head(job),
        "only_folds": job["only_folds"],
        "n_test": int(len(ys)),
        "select_by": select_by,
        "accuracy": sel[select_by]["accuracy"],
        "majority_rate": float(counts.max() / counts.sum()),
        "hold_vs_move": sel[select_by]["hold_vs_move"],
        "split_at_chance": sel[select_by]["split_at_chance"],
        "per_fold": per_fold,
        "collapsed_folds": int(sum(f["collapsed"] for f in per_fold)),
        "seconds": seconds,
        "selection": sel,
    }


def _jobs(args) -> list[dict]:
    entries = (
        json.loads(Path(args.grid).read_text())
        if args.grid
        else [{"tag": args.tag, "recipe": json.loads(args.recipe), "model_kwargs": json.loads(args.model_kwargs)}]
    )
    jobs = []
    for e in entries:
        for data in args.data.split(","):
            for kind in args.kinds.split(","):
                for size in (int(s) for s in args.sizes.split(",")):
                    for model in e.get("models", args.models.split(",")):
                        jobs.append(
                            {
                                "tag": e.get("tag", ""),
                                "recipe": e.get("recipe", {}),
                                "model_kwargs": e.get("model_kwargs", {}),
                                "float_inputs": e.get("float_inputs", False),
                                "data": data,
                                "kind": kind,
                                "size": size,
                                "window": args.window,
                                "model": model,
                                "horizon": args.horizon,
                                "epochs": args.epochs,
                                "folds": args.folds,
                                "train": args.train,
                                "seed": e.get("seed", args.seed),
                                "cache_dir": args.cache_dir,
                                "threads": args.threads,
                                "probe": args.probe,
                                "only_folds": args.only_folds,
                            }
                        )
    return jobs


def _row(r: dict) -> str:
    a = r["accuracy"]
    found = "yes" if a["low"] > r["majority_rate"] else "no"
    states = ",".join(sorted({f["diagnosis"] for f in r["per_fold"]}))
    blind = " | ".join(f"{r[k]:.3f}" if k in r else "–" for k in ("hold_vs_move", "split_at_chance"))
    return (
        f"| {r['data']} | {r['kind']} {r['size']} | {r['model']} | {a['estimate']:.3f} [{a['low']:.3f}, {a['high']:.3f}] | "
        f"{r['majority_rate']:.3f} | {found} | {r['collapsed_folds']}/{len(r['per_fold'])} | {states} | {blind} | {r['seconds']:.0f} |"
    )


def markdown(records: list[dict]) -> str:
    head = [
        "| data | image | model | accuracy [95% CI] | majority | edge found | collapsed folds | diagnosis | hold vs move "
        "| buy/sell at chance | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    return "\n".join(head + [_row(r) for r in records])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--sizes", default="32,64")
    p.add_argument("--kinds", default="candles,gasf")
    p.add_argument("--data", default="shipped,seed11", help="shipped, seedN, or a CSV path; comma-separated")
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--horizon", type=int, default=6)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--train", type=int, default=6000, help="most recent training samples per fold")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe", default="{}", help="JSON TrainConfig overrides (default: the TrainConfig defaults)")
    p.add_argument("--model-kwargs", default="{}", help="JSON builder kwargs")
    p.add_argument("--tag", default="defaults")
    p.add_argument("--grid", help="JSON file: list of experiments (see the module docstring)")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes (one torch thread each)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-dir", default=None, help="rendered-image cache shared by the jobs")
    p.add_argument(
        "--probe",
        action="store_true",
        help="also score every epoch on the validation and test folds and record which test accuracy each "
        f"checkpoint-selection rule ({', '.join(SELECT_RULES)}) would have kept (record key 'selection')",
    )
    p.add_argument(
        "--only-folds",
        type=int,
        help="train only the first N of the --folds walk-forward folds (same splits as the full run; implies "
        "--probe, and the record's figures are those of the epochs training would have restored)",
    )
    p.add_argument("--json", help="write all records here (JSON lines)")
    p.add_argument("--out", help="write the markdown table here")
    args = p.parse_args()
    jobs = _jobs(args)
    t0 = time.perf_counter()
    records = []
    sink = open(args.json, "a") if args.json else None
    run = map if args.jobs <= 1 else ProcessPoolExecutor(args.jobs).map
    for r in run(run_one, jobs):
        records.append(r)
        print(_row(r) + f" {r['tag']}", flush=True)
        if sink:
            sink.write(json.dumps(r) + "\n")
            sink.flush()
    import torch

    device = "cuda " + torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    text = (
        f"Budget: {args.train} most recent training samples x {args.epochs} epochs per fold, {args.folds} folds, window "
        f"{args.window}, horizon {args.horizon}, seed {args.seed}; {device}, torch {torch.__version__}, {platform.python_version()}; "
        f"{time.perf_counter() - t0:.0f} s wall.\n\n" + markdown(records) + "\n"
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
