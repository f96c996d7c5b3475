"""Architectures sized for 48x48 grayscale faces, in plain PyTorch, behind a registry.

Every net exposes ``forward_features(x) -> (N, D)`` (the penultimate features that the OOD
scorer is fitted on) and ``head`` (a Linear from D to the number of classes).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["create_model", "list_models", "register_model", "FerNet"]

_REGISTRY: dict[str, Callable[..., FerNet]] = {}


def register_model(fn: Callable[..., FerNet]) -> Callable[..., FerNet]:
    """Decorator: register an architecture factory under its function name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names accepted by :func:`create_model` / ``emoar train --arch``."""
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int = 7, **kwargs: object) -> FerNet:
    """Build a registered architecture.

    Raises:
        ValueError: unknown name (the message lists the available ones).
    """
    if name not in _REGISTRY:
        raise ValueError(f"Unknown architecture {name!r}; available: {', '.join(list_models())}")
    net = _REGISTRY[name](num_classes=num_classes, **kwargs)
    net.arch = name
    return net


class FerNet(nn.Module):
    """Base: ``features`` -> global pooling -> dropout -> ``head``."""

    arch: str = ""
    feature_dim: int = 0
    head: nn.Linear
    drop: nn.Dropout

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.forward_features(x)))


def _conv_bn(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = _conv_bn(cin, cout, 3, stride)
        self.c2 = _conv_bn(cout, cout, 3, 1, act=False)
        self.short = (
            nn.Identity() if stride == 1 and cin == cout else _conv_bn(cin, cout, 1, stride, act=False)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.c2(self.c1(x)) + self.short(x))


class ResNetFer(FerNet):
    """ResNet-style net for 48x48: stem, 4 residual stages (strides 1,2,2,2), GAP."""

    def __init__(
        self,
        num_classes: int = 7,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        depths: tuple[int, ...] = (1, 1, 1, 1),
        drop: float = 0.3,
    ) -> None:
        super().__init__()
        self.stem = _conv_bn(1, widths[0], 3, 1)
        blocks: list[nn.Module] = []
        cin = widths[0]
        for i, (w, d) in enumerate(zip(widths, depths, strict=True)):
            for j in range(d):
                blocks.append(_Basic(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = cin
        self.drop = nn.Dropout(drop)
        self.head = nn.Linear(cin, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean((2, 3))


@register_model
def resnet_fer(num_classes: int = 7, **kw: object) -> FerNet:
    """Default: ~1.2 M params, ~0.2 GMAC at 48x48."""
    return ResNetFer(num_classes, **kw)  # type: ignore[arg-type]


@register_model
def resnet_fer_m(num_classes: int = 7, **kw: object) -> FerNet:
    """Wider/deeper ResNet (teacher-sized): widths 64-512, two blocks per stage."""
    return ResNetFer(num_classes, widths=(64, 128, 256, 512), depths=(1, 2, 2, 1), **kw)  # type: ignore[arg-type]


class BaselineCnn(FerNet):
    """The seeds' small baseline: 3 conv blocks (conv-conv-pool), GAP, dropout."""

    def __init__(self, num_classes: int = 7, drop: float = 0.4) -> None:
        super().__init__()
        chans = [1, 32, 64, 128]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            layers += [_conv_bn(a, b), _conv_bn(b, b), nn.MaxPool2d(2)]
        self.body = nn.Sequential(*layers)
        self.feature_dim = 128
        self.drop = nn.Dropout(drop)
        self.head = nn.Linear(128, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean((2, 3))


@register_model
def cnn_small(num_classes: int = 7, **kw: object) -> FerNet:
    """Baseline CNN, ~0.3 M params."""
    return BaselineCnn(num_classes, **kw)  # type: ignore[arg-type]


class VggFer(FerNet):
    """VGG-style net for 48x48 (Khaireddin & Chen 2021 layout, narrower by default)."""

    def __init__(
        self, num_classes: int = 7, widths: tuple[int, ...] = (64, 128, 256, 512), drop: float = 0.4
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for w in widths:
            layers += [_conv_bn(cin, w), _conv_bn(w, w), nn.MaxPool2d(2)]
            cin = w
        self.body = nn.Sequential(*layers)
        self.feature_dim = cin
        self.drop = nn.Dropout(drop)
        self.head = nn.Linear(cin, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean((2, 3))


@register_model
def vgg_fer(num_classes: int = 7, **kw: object) -> FerNet:
    """VGG-style, 8 convs 64-512, ~4.7 M params."""
    return VggFer(num_classes, **kw)  # type: ignore[arg-type]


@register_model
def vgg_fer_slim(num_classes: int = 7, **kw: object) -> FerNet:
    """``vgg_fer`` at 5/8 width (40-320 channels, ~1.8 M params, 0.39x the MACs): the shape
    ``emoar prune`` cuts a trained ``vgg_fer`` down to, to run within the default's time."""
    return VggFer(num_classes, widths=(40, 80, 160, 320), **kw)  # type: ignore[arg-type]


class _InvRes(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.body = nn.Sequential(
            _conv_bn(cin, hid, 1) if expand != 1 else nn.Identity(),
            _conv_bn(hid, hid, 3, stride, groups=hid),
            _conv_bn(hid, cout, 1, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.use_res else y


class MobileNetV2Fer(FerNet):
    """MobileNetV2-style inverted residuals for 48x48 (first stride removed)."""

    def __init__(self, num_classes: int = 7, drop: float = 0.2) -> None:
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1), (6, 160, 2, 2)]
        layers: list[nn.Module] = [_conv_bn(1, 32, 3, 1)]
        cin = 32
        for t, c, n, s in cfg:
            for i in range(n):
                layers.append(_InvRes(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_conv_bn(cin, 512, 1))
        self.body = nn.Sequential(*layers)
        self.feature_dim = 512
        self.drop = nn.Dropout(drop)
        self.head = nn.Linear(512, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean((2, 3))


@register_model
def mobilenetv2_fer(num_classes: int = 7, **kw: object) -> FerNet:
    """MobileNetV2-style, ~0.9 M params, for mobile runtimes."""
    return MobileNetV2Fer(num_classes, **kw)  # type: ignore[arg-type]


class ViTFer(FerNet):
    """ViT-tiny-style: conv stem to 6x6 tokens (stride 8), transformer encoder, CLS token."""

    def __init__(
        self, num_classes: int = 7, dim: int = 192, depth: int = 6, heads: int = 3, drop: float = 0.1
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(1, 32, 3, 2), _conv_bn(32, 64, 3, 2), nn.Conv2d(64, dim, 3, 2, 1))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 37, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim * 4, 0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.feature_dim = dim
        self.drop = nn.Dropout(drop)
        self.head = nn.Linear(dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        t = self.stem(x).flatten(2).transpose(1, 2)  # (N, 36, dim)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos
        return self.norm(self.encoder(t)[:, 0])


@register_model
def vit_tiny_fer(num_classes: int = 7, **kw: object) -> FerNet:
    """ViT-tiny-style transformer, ~2.8 M params."""
    return ViTFer(num_classes, **kw)  # type: ignore[arg-type]


@register_model
def vit_small_fer(num_classes: int = 7, **kw: object) -> FerNet:
    """ViT-small-style transformer (width 384, 6 heads; 6 blocks as ``vit_tiny_fer``), ~10.8 M
    params: the seed's second ViT, for a machine with a GPU."""
    return ViTFer(num_classes, **{"dim": 384, "heads": 6, **kw})  # type: ignore[arg-type]
