"""Latency/throughput measurement of a model folder per provider and batch size (onnxruntime + numpy only).

Used by ``effnet-trading zoo bench`` and ``benchmarks/bench_zoo.py``. Every point runs
until ``n_iter`` calls or ``max_seconds``, whichever comes first, after warm-up calls.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from effnet_trading.model_zoo.runtime import LatencyRecorder, Predictor, resolve_providers

__all__ = ["DEFAULT_BATCHES", "time_calls", "provider_chains", "bench_model_dir", "format_bench"]

DEFAULT_BATCHES = (1, 8, 32, 64, 256)


def time_calls(
    fn: Callable[[], Any], *, n_iter: int = 50, max_seconds: float = 2.0, warmup: int = 2
) -> LatencyRecorder:
    """Call ``fn`` ``warmup`` times untimed, then up to ``n_iter`` times (stopping after ``max_seconds``); ms per call."""
    for _ in range(warmup):
        fn()
    rec = LatencyRecorder()
    t_end = time.perf_counter() + max_seconds
    for _ in range(max(1, n_iter)):
        t0 = time.perf_counter()
        fn()
        rec.add((time.perf_counter() - t0) * 1e3)
        if t0 > t_end:
            break
    return rec


def provider_chains(providers: str | Sequence[str] = "auto") -> list[list[str]]:
    """One provider list per provider to measure: each with the slower ones after it as fallback."""
    order = resolve_providers("auto")
    wanted = order if providers == "auto" else resolve_providers(providers)
    return [[p, *(order[order.index(p) + 1 :] if p in order else [])] for p in wanted]


def bench_model_dir(
    model_dir: str | os.PathLike,
    providers: str | Sequence[str] = "auto",
    *,
    variant: str = "fp32",
    batches: Sequence[int] = DEFAULT_BATCHES,
    n_iter: int = 50,
    max_seconds: float = 2.0,
    intra_op_threads: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Per provider: batch-1 latency p50/p95/p99 (ms), batch-64 throughput (img/s) and a batch-size curve."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"model_dir": str(model_dir), "variant": variant, "providers": {}}
    for chain in provider_chains(providers):
        rows = []
        for b in sorted(set(int(x) for x in batches) | {1, 64}):
            pred = Predictor(model_dir, chain, batch_size=b, intra_op_threads=intra_op_threads, variant=variant)
            images = rng.random((b, *pred.input_shape), dtype=np.float32)
            rec = time_calls(lambda: pred.predict(images), n_iter=n_iter, max_seconds=max_seconds)
            pct = rec.percentiles()
            rows.append(
                {
                    "batch": b,
                    **{k: round(v, 3) for k, v in pct.items()},
                    "calls": len(rec),
                    "img_per_s": round(b / (pct["p50"] / 1e3), 1),
                }
            )
            out.setdefault("input_shape", list(pred.input_shape))
            pred.close()
        by_batch = {r["batch"]: r for r in rows}
        out["providers"][chain[0]] = {
            "chain": chain,
            "batch1_ms": {k: by_batch[1][k] for k in ("p50", "p95", "p99")},
            "batch64_img_per_s": by_batch[64]["img_per_s"],
            "curve": [r for r in rows if r["batch"] in set(batches) or r["batch"] == 1],
        }
    return out


def format_bench(result: dict[str, Any]) -> str:
    """Plain-text table of ``bench_model_dir`` output."""
    lines = [
        f"model {result['model_dir']} ({result['variant']}), input (N, {', '.join(map(str, result.get('input_shape', [])))})"
    ]
    for prov, r in result["providers"].items():
        b1 = r["batch1_ms"]
        lines.append(f"\n{prov}  (chain {' -> '.join(r['chain'])})")
        lines.append(f"  batch 1 latency  p50 {b1['p50']:.3f} ms  p95 {b1['p95']:.3f} ms  p99 {b1['p99']:.3f} ms")
        lines.append(f"  batch 64 throughput  {r['batch64_img_per_s']:.1f} img/s")
        lines.append("  batch   p50 ms   p99 ms    img/s  calls")
        for row in r["curve"]:
            lines.append(
                f"  {row['batch']:>5} {row['p50']:>8.3f} {row['p99']:>8.3f} {row['img_per_s']:>8.1f} {row['calls']:>6}"
            )
    return "\n".join(lines)
