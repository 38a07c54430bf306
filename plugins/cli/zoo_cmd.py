"""``effnet-trading zoo``: list, export, verify, benchmark and describe models (thin: logic lives in model_zoo)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

__all__ = ["zoo"]

_FIELD_KINDS = ("gasf", "gadf", "recurrence")


def _sample_frame(csv: str | None, n_bars: int = 3000):
    """OHLCV to render check images from: the given CSV, else seeded synthetic bars."""
    if csv:
        from effnet_trading.imaging import load_ohlcv

        return load_ohlcv(csv)
    from effnet_trading.imaging.synthetic import SampleConfig, make_planted

    return make_planted(SampleConfig(n_bars=n_bars, seed=11))[0]


def _render_tail(spec, frame, n: int) -> np.ndarray:
    """The last ``n`` renderable images of ``frame``, ``(n, C, H, W)`` float32."""
    from effnet_trading.imaging import render, valid_ends

    ends = valid_ends(spec, frame)
    if not len(ends):
        raise click.ClickException(
            f"the data has {len(frame)} bars, too few to render one image for this spec (window {spec.window})."
        )
    return render(spec, frame, ends[-n:])


def _build_spec(kind: str, window: int, size: int, channels: str | None, spec_json: str | None):
    from effnet_trading.imaging import spec_from_json, spec_from_options

    if spec_json:
        return spec_from_json(Path(spec_json).read_text() if Path(spec_json).is_file() else spec_json)
    kw = {}
    if channels:
        if kind in _FIELD_KINDS:
            kw["fields"] = tuple(c.strip() for c in channels.split(","))
        elif channels in ("rgb", "grey"):
            kw["color"] = channels
        else:
            raise click.BadParameter(
                f"--channels for {kind!r} is 'rgb' or 'grey'; for {list(_FIELD_KINDS)} a comma list of price fields."
            )
    return spec_from_options(kind, window=window, size=size, **kw)


@click.group("zoo")
def zoo() -> None:
    """Model zoo: registry models and exported model folders (model.onnx + card.json)."""


@zoo.command("list")
@click.option(
    "--models-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Also list exported model folders found below this path.",
)
@click.option("--pattern", default="*", show_default=True, help="Glob on registry names.")
def list_cmd(models_dir: str | None, pattern: str) -> None:
    """Registry architectures (params, native size) and exported model folders."""
    from effnet_trading.errors import EffnetTradingError, MissingDependencyError

    try:
        from effnet_trading.model_zoo.registry import create_model, list_models, model_info

        names = list_models(pattern)
    except MissingDependencyError:
        click.echo(
            'registry: torch is not installed, so architectures cannot be listed (pip install "effnet-trading[train]").'
        )
        names = []
    if names:
        import torch

        click.echo(f"{'model':<22}{'family':<14}{'params':>12}  default size")
        for name in names:
            info = model_info(name)
            with torch.device("meta"):  # count parameters without allocating or initialising them
                n_params = sum(p.numel() for p in create_model(name, num_classes=3, in_chans=3).parameters())
            click.echo(f"{name:<22}{info.family:<14}{n_params / 1e6:>11.2f}M  {info.default_size}px")
    if models_dir:
        from effnet_trading.model_zoo.card import find_model_dirs, load_card

        dirs = find_model_dirs(models_dir)
        click.echo(f"\nexported models under {models_dir}: {len(dirs)}")
        for d in dirs:
            try:
                card = load_card(d)
                variants = ",".join(["fp32", *sorted(card.variants)])
                click.echo(
                    f"  {str(d):<40} {card.architecture:<18} (N, {', '.join(map(str, card.input_shape))})  {variants}  ok"
                )
            except EffnetTradingError as exc:
                click.echo(f"  {str(d):<40} BROKEN: {exc}")


@zoo.command("export")
@click.option("--model", "model_name", required=True, help="Registry name, e.g. efficientnet_b0, compact, small_cnn.")
@click.option("--kind", default="gasf", show_default=True, help="ImageSpec kind.")
@click.option("--window", default=32, show_default=True, type=click.IntRange(min=2), help="Bars per image.")
@click.option(
    "--size", default=64, show_default=True, type=click.IntRange(min=4), help="Image height = width (pixels)."
)
@click.option(
    "--channels",
    default=None,
    help="gasf/gadf/recurrence: price fields 'close,open'; candles/ohlc_bars: 'rgb' or 'grey'.",
)
@click.option(
    "--spec-json",
    default=None,
    help="Full ImageSpec/StackSpec as JSON (text or file); overrides --kind/--window/--size/--channels.",
)
@click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="torch state_dict (.pt) to load; default: untrained weights.",
)
@click.option("--fp16", is_flag=True, help="Also write model_fp16.onnx.")
@click.option("--int8", is_flag=True, help="Also write model_int8.onnx (needs --calib-data).")
@click.option(
    "--calib-data",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="OHLCV CSV: INT8 calibration (first 75%) and checks (last 25%).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for untrained weights.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Model folder to write.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Write into a folder that holds other files (only the model's own files are replaced).",
)
def export_cmd(
    model_name, kind, window, size, channels, spec_json, weights, fp16, int8, calib_data, seed, out_dir, overwrite
) -> None:
    """Export a registry model (untrained or with --weights) to a verified model folder. Training exports via `train`."""

    if int8 and not calib_data:
        raise click.UsageError("--int8 needs --calib-data CSV: training bars to calibrate activation ranges on.")
    import torch

    from effnet_trading.model_zoo.export import export_onnx
    from effnet_trading.model_zoo.registry import create_model

    spec = _build_spec(kind, window, size, channels, spec_json)
    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=3, in_chans=spec.channels)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        except RuntimeError as exc:
            raise click.ClickException(
                f"--weights {weights} do not fit {model_name} with {spec.channels} input channel(s): {exc}"
            ) from exc
    model.eval()
    frame = _sample_frame(calib_data)
    images = _render_tail(spec, frame, 512 if calib_data else 64)
    cut = int(len(images) * 0.75)
    calib, holdout = (images[:cut], images[cut:]) if int8 else (None, None)
    from effnet_trading.outputs import run_folder

    config = {
        "model": model_name,
        "spec": spec.to_dict(),
        "weights": weights,
        "fp16": fp16,
        "int8": int8,
        "calib_data": calib_data,
        "seed": seed,
    }
    inputs = {k: v for k, v in (("weights", weights), ("calib_data", calib_data)) if v}
    # the run folder refuses a folder of other files (unless --overwrite) and never deletes them
    with run_folder(out_dir, command="zoo export", config=config, inputs=inputs, overwrite=overwrite) as work:
        card = export_onnx(
            model,
            work,
            name=Path(out_dir).resolve().name,
            spec=spec,
            architecture=model_name,
            training={"weights": str(weights) if weights else "untrained (random init)", "seed": seed},
            sample_images=images[-64:],
            fp16=fp16,
            int8=int8,
            calib_images=calib,
            holdout_images=holdout,
        )
    fp64 = card.metrics.get("export_float64_check") or []
    judged = "".join(
        f"; above 1e-4 on the {c['checked_on']}, so judged per image against float64: at worst onnx "
        f"{c['onnx_vs_float64']:.1e} from it where torch float32 is {c['torch_float32_vs_float64']:.1e} "
        f"(allowed {c['allowed']:.1e})"
        for c in fp64
    )
    click.echo(
        f"exported {model_name} -> {out_dir} (input (N, {', '.join(map(str, card.input_shape))}), max |onnx - torch| {card.metrics['export_max_abs_err']:.1e}{judged})"
    )
    for name, info in sorted(card.variants.items()):
        click.echo(
            f"  {name}: max |dp| vs fp32 {info['max_abs_err_vs_fp32']:.1e}, argmax agreement {info['agreement_vs_fp32']:.3f} on {info['n_images']} {info['checked_on']}"
        )


@zoo.command("verify")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="OHLCV CSV to render check images from (default: seeded synthetic bars).",
)
@click.option("--n-images", default=64, show_default=True, type=click.IntRange(min=1))
def verify_cmd(model_dir: str, data: str | None, n_images: int) -> None:
    """Check a model folder: hashes, spec, graph shapes, and a numerical self-check of every variant."""
    from effnet_trading.errors import EffnetTradingError
    from effnet_trading.model_zoo.calibration import check_calibration_probe
    from effnet_trading.model_zoo.quantize import FP16_ATOL, INT8_MEAN_ATOL
    from effnet_trading.model_zoo.runtime import Predictor

    ref = Predictor(model_dir, "cpu")
    click.echo(
        f"ok   card, sha256 of {', '.join(['fp32', *sorted(ref.card.variants)])}, spec renders (N, {', '.join(map(str, ref.input_shape))})"
    )
    images = _render_tail(ref.spec, _sample_frame(data), n_images)
    p32 = ref.predict(images)
    problems = []
    sums = p32.sum(axis=1)
    multilabel = (ref.card.normalization or {}).get("output") == "sigmoid"  # one probability per label
    if not np.all(np.isfinite(p32)):
        problems.append("fp32 output has NaN/inf")
    elif multilabel:
        if p32.min() < 0.0 or p32.max() > 1.0:
            problems.append(f"fp32 label probabilities span {p32.min():.5f}..{p32.max():.5f}, not within [0, 1]")
        else:
            click.echo(f"ok   fp32 on {len(images)} rendered images: finite, every label probability in [0, 1]")
    elif np.max(np.abs(sums - 1)) > 1e-4:
        problems.append(f"fp32 rows sum to {sums.min():.5f}..{sums.max():.5f}, not 1")
    else:
        click.echo(
            f"ok   fp32 on {len(images)} rendered images: finite, rows sum to 1 (max |sum-1| {np.max(np.abs(sums - 1)):.1e})"
        )
    for variant in sorted(ref.card.variants):
        try:
            pv = Predictor(model_dir, "cpu", variant=variant).predict(images)
        except EffnetTradingError as exc:
            problems.append(f"{variant}: {exc}")
            continue
        d = np.abs(pv - p32)
        agree = float(np.mean(pv.argmax(1) == p32.argmax(1)))
        bad = d.max() > FP16_ATOL if variant == "fp16" else d.mean() > INT8_MEAN_ATOL
        line = f"{variant}: max |dp| {d.max():.1e}, mean |dp| {d.mean():.1e}, argmax agreement {agree:.3f} vs fp32"
        if bad or not np.all(np.isfinite(pv)):
            problems.append(
                line
                + f" (tolerance: {'max' if variant == 'fp16' else 'mean'} {FP16_ATOL if variant == 'fp16' else INT8_MEAN_ATOL})"
            )
        else:
            click.echo(f"ok   {line}")
    calibrated = check_calibration_probe(ref)
    if calibrated is not None:
        ok, line = calibrated
        if ok:
            click.echo(f"ok   {line}")
        else:
            problems.append(line)
    for p in problems:
        click.echo(f"FAIL {p}")
    if problems:
        raise click.ClickException(f"{len(problems)} check(s) failed for {model_dir}; re-export the model folder.")
    click.echo(f"{model_dir}: all checks passed")


@zoo.command("bench")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option(
    "--providers",
    default="auto",
    show_default=True,
    help="'auto', 'cpu', or comma-separated onnxruntime provider names.",
)
@click.option("--variant", default="fp32", show_default=True, type=click.Choice(["fp32", "fp16", "int8"]))
@click.option("--batches", default="1,8,32,64,256", show_default=True, help="Batch sizes for the curve.")
@click.option("--max-seconds", default=2.0, show_default=True, type=float, help="Time cap per measured point.")
@click.option("--threads", default=None, type=int, help="intra-op threads (default: usable cores, at most 4).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def bench_cmd(model_dir, providers, variant, batches, max_seconds, threads, as_json) -> None:
    """Latency p50/p95/p99 at batch 1, throughput at batch 64, and a batch-size curve, per provider."""
    from effnet_trading.model_zoo.bench import bench_model_dir, format_bench

    provs = providers if providers in ("auto", "cpu") else [p.strip() for p in providers.split(",")]
    try:
        sizes = [int(b) for b in batches.split(",")]
    except ValueError as exc:
        raise click.BadParameter(f"--batches must be comma-separated integers, got {batches!r}.") from exc
    result = bench_model_dir(
        model_dir, provs, variant=variant, batches=sizes, max_seconds=max_seconds, intra_op_threads=threads
    )
    click.echo(json.dumps(result, indent=2) if as_json else format_bench(result))


@zoo.command("card")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print card.json as loaded.")
@click.option("--no-verify", is_flag=True, help="Skip the sha256 checks (inspect a folder that fails them).")
def card_cmd(model_dir: str, as_json: bool, no_verify: bool) -> None:
    """Pretty-print a model card."""
    from effnet_trading.model_zoo.card import load_card

    card = load_card(model_dir, verify_hash=not no_verify)
    click.echo(json.dumps(card.to_dict(), indent=2, sort_keys=True) if as_json else card.summary())
