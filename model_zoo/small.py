"""Small CNNs for fast CPU use: the JKX-style baseline CNN.

(Compact EfficientNet variants live in ``efficientnet.py`` as rows of its tables.)
"""

from __future__ import annotations

import torch
from torch import nn

from effnet_trading.model_zoo.registry import register_model

__all__ = ["SmallCNN", "small_cnn"]


class SmallCNN(nn.Module):
    """Jiang-Kelly-Xiu style CNN: conv(5x3) -> BN -> LeakyReLU -> maxpool(2x1), repeated; linear head."""

    def __init__(self, num_classes: int = 3, in_chans: int = 3, widths=(32, 64, 128), drop_rate: float = 0.5):
        super().__init__()
        layers, c = [], in_chans
        for w in widths:
            layers += [
                nn.Conv2d(c, w, (5, 3), padding=(2, 1)),
                nn.BatchNorm2d(w),
                nn.LeakyReLU(0.01),
                nn.MaxPool2d((2, 1)),
            ]
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = c
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(c, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> pooled ``(N, num_features)``."""
        return self.pool(self.features(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.forward_features(x)))


@register_model("small_cnn", family="baseline", default_size=64, description="JKX-style 3-block CNN baseline")
def small_cnn(num_classes: int = 3, in_chans: int = 3, **kw) -> SmallCNN:
    return SmallCNN(num_classes=num_classes, in_chans=in_chans, **kw)
