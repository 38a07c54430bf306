"""Grad-CAM (Selvaraju et al. 2017) on the torch model behind an exported folder (needs torch).

The model is rebuilt from the card (architecture, class count, input size, ``model_kwargs``) and the
best weights of the training run's last fold (``<run>/checkpoints/fold_K/epoch_*.pt``, written by
``train``/``train_and_export`` beside ``<run>/model``), then checked against ``model.onnx``: a checkpoint
that does not reproduce the ONNX probabilities is refused, never explained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from effnet_trading.errors import ModelCardError
from effnet_trading.model_zoo.registry import create_model

__all__ = ["load_checkpoint_model", "gradcam_map", "target_layer", "MIN_MAP_FRACTION"]

# Grad-CAM uses the deepest feature map with at least half the image's side: on the planted set the last
# (2x16) map of small_cnn put 0.46x a uniform map's weight on the pattern bars, the 8x16 one 0.92x, and
# agreed better with occlusion (Spearman 0.30 vs -0.33); see tests/test_explain.py
MIN_MAP_FRACTION = 0.5


def load_checkpoint_model(model_dir: Path, card, *, check_with=None, images=None, atol: float = 1e-3):
    """``(net, source)``: the normalising torch model (``x`` in [0, 1] -> logits) that was exported to ``model_dir``."""
    from effnet_trading.model_zoo.train import _Normalised

    folds = sorted((model_dir.parent / "checkpoints").glob("fold_*"), key=lambda p: int(p.name.split("_")[1]))
    paths = sorted(folds[-1].glob("epoch_*.pt")) if folds else []
    if not paths:
        raise ModelCardError(f"no checkpoint under {model_dir.parent / 'checkpoints'}; re-run `effnet-trading train`.")
    st = torch.load(paths[-1], map_location="cpu", weights_only=False)
    state = st["best"][1] if st.get("best") and st["best"][1] is not None else st["net"]
    c, h, w = card.input_shape
    kw = {"input_size": (h, w)} | dict(st["config"].get("model_kwargs") or {})
    base = create_model(card.architecture, num_classes=len(card.class_names), in_chans=c, **kw)
    norm = card.normalization
    net = _Normalised(base, norm["mean"], norm["std"])
    net.load_state_dict(state)
    net.eval()
    if check_with is not None and images is not None and len(images):
        from effnet_trading.model_zoo.calibration import apply_temperature

        with torch.no_grad():
            logits = net(torch.from_numpy(np.asarray(images, np.float32)))
        sigmoid = (card.normalization or {}).get("output") == "sigmoid"  # multi-label cards
        ref = (torch.sigmoid(logits) if sigmoid else torch.softmax(logits, 1)).numpy()
        if not sigmoid and card.temperature != 1.0:  # the Predictor applies a calibrated card's temperature
            ref = apply_temperature(ref, card.temperature)
        err = float(np.abs(check_with.predict(images) - ref).max())
        if err > atol:
            raise ModelCardError(
                f"the checkpoint {paths[-1]} does not reproduce {model_dir / 'model.onnx'} (max probability "
                f"difference {err:.2e} > {atol}); the model folder was exported from another run. "
                "Use --method occlusion, or re-export the model from this run."
            )
    return net, str(paths[-1])


def target_layer(net: nn.Module, shape: tuple[int, int, int]) -> tuple[str, nn.Module]:
    """The module whose output is the deepest 4-d feature map (forward order) at least ``MIN_MAP_FRACTION``
    of the image's side."""
    seen: list[tuple[str, nn.Module, tuple]] = []
    names = {m: n for n, m in net.named_modules()}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: seen.append((names[mod], mod, tuple(out.shape))))
        for m in net.modules()
        if m is not net
    ]
    try:
        with torch.no_grad():
            net(torch.zeros(1, *shape))
    finally:
        for hk in hooks:
            hk.remove()
    ok = [(n, m) for n, m, s in seen if len(s) == 4 and min(s[2:]) >= max(1, int(min(shape[1:]) * MIN_MAP_FRACTION))]
    if not ok:
        raise ModelCardError("the model has no 4-d feature map to compute Grad-CAM on; use --method occlusion.")
    return ok[-1]


def gradcam_map(net: nn.Module, images: np.ndarray, target=None) -> tuple[np.ndarray, np.ndarray, str]:
    """Grad-CAM of the ``target`` logit (None: the predicted class) -> ``(maps (N, H, W) in [0, 1], target, layer)``.

    ReLU of the channel-weighted feature map (weights: the gradient's spatial mean), upsampled bilinearly."""
    from effnet_trading.model_zoo.explain import _normalise

    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    name, layer = target_layer(net, tuple(x.shape[1:]))
    store = {}
    hook = layer.register_forward_hook(lambda mod, inp, out: store.__setitem__("a", out))
    try:
        with torch.enable_grad():
            logits = net(x)
            tgt = logits.argmax(1) if target is None else torch.as_tensor(np.asarray(target), dtype=torch.long)
            score = logits.gather(1, tgt[:, None]).sum()
            (grad,) = torch.autograd.grad(score, store["a"])
    finally:
        hook.remove()
    act = store["a"].detach()
    cam = torch.relu((grad.mean((2, 3), keepdim=True) * act).sum(1, keepdim=True))
    cam = nn.functional.interpolate(cam, size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)[:, 0]
    return _normalise(cam.numpy()), tgt.numpy(), f"{name} ({act.shape[2]}x{act.shape[3]})"
