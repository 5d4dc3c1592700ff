"""DDColor's perceptual loss: L1 distances between frozen VGG16-BN features of two RGB images.

Design:

* the network is torchvision's ``vgg16_bn().features`` cut right after ``conv5_1``: indices
  0 (conv1_1), 7 (conv2_1), 14 (conv3_1), 24 (conv4_1) and 34 (conv5_1), 35 modules in all, so
  nothing past the last tapped layer is built or run;
* features are taken at the convolution outputs, *before* their BatchNorm and ReLU. That is what
  DDColor's training code (basicsr's ``VGGFeatureExtractor`` with ``vgg_type='vgg16_bn'``)
  returns for the layer names ``conv1_1 .. conv5_1``: it names the modules ``conv, bn, relu, ...,
  pool`` in torchvision's order and returns the output of the module called ``convN_1``;
* ImageNet normalisation happens inside, so the input is plain RGB in [0, 1] (the output of
  :func:`colorlib.color.L_ab_to_rgb`);
* the VGG is frozen: ``requires_grad=False`` and eval mode always, even after a parent module's
  ``.train()`` (BatchNorm must keep its ImageNet statistics); the target's features are computed
  without a graph, as DDColor's ``gt.detach()``;
* ``loss = sum_i w_i * criterion(f_i(pred), f_i(target))`` with the mean over all elements of
  each layer (DDColor: weights 0.0625, 0.125, 0.25, 0.5, 1.0, criterion L1; its overall weight
  5.0 belongs to the objective in :mod:`colorlib.training.losses`).

Weights come from :func:`colorlib.models.pretrained.load_torchvision_state_dict`
(``VGG16_BN_Weights.IMAGENET1K_V1``, only the ``features.0`` to ``features.34`` entries). When
they cannot be had the loss keeps a random initialisation, says so loudly on stderr and records
it in ``weights_source``: random features still compare structure at five scales, but it is not
the paper's loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorlib.runtime import say

__all__ = ["LAYER_NAMES", "LAYER_INDICES", "VGG_WEIGHTS", "vgg16_bn_features", "PerceptualLoss"]

VGG_WEIGHTS = "VGG16_BN_Weights.IMAGENET1K_V1"
#: The tapped layers (basicsr's names) and their indices in torchvision's ``vgg16_bn().features``.
LAYER_NAMES = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
LAYER_INDICES = (0, 7, 14, 24, 34)
# torchvision's configuration "D" (VGG16) up to conv5_1; "M" is a 2x2 max pooling
_VGG16_TO_CONV5_1 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CRITERIA = {"l1": F.l1_loss, "l2": F.mse_loss}


def vgg16_bn_features() -> nn.Sequential:
    """torchvision's ``vgg16_bn().features[:35]`` (through ``conv5_1``), randomly initialised.

    The module order and indices are torchvision's, so ``features.i.*`` state-dict entries load
    into it as ``i.*``.
    """
    layers: list[nn.Module] = []
    in_channels = 3
    for spec in _VGG16_TO_CONV5_1:
        if spec == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        conv = nn.Conv2d(in_channels, spec, kernel_size=3, padding=1)
        layers += [conv, nn.BatchNorm2d(spec), nn.ReLU(inplace=True)]
        in_channels = spec
    return nn.Sequential(*layers[: LAYER_INDICES[-1] + 1])


def _load_imagenet_weights(features: nn.Sequential) -> str:
    """Load ImageNet weights into ``features`` if possible; return the source (see the class)."""
    from colorlib.models.pretrained import load_torchvision_state_dict

    weights = load_torchvision_state_dict(VGG_WEIGHTS)
    if weights.state_dict is None:
        say(
            "WARNING: PerceptualLoss uses a RANDOMLY initialised VGG16-BN: the ImageNet weights "
            f"({VGG_WEIGHTS}) are not available. The loss still compares multi-scale features, "
            "but it is NOT DDColor's perceptual loss; put vgg16_bn-6c64b313.pth in the torch hub "
            "cache to get it."
        )
        return "random"
    prefix = "features."
    state = {
        key[len(prefix) :]: value
        for key, value in weights.state_dict.items()
        if key.startswith(prefix) and int(key.split(".")[1]) < len(features)
    }
    features.load_state_dict(state)  # strict: every kept layer must be in the file
    return weights.source


class PerceptualLoss(nn.Module):
    """Weighted feature distance between two RGB images through a frozen VGG16-BN.

    Args:
        pretrained: load the ImageNet weights (falls back to random, loudly, when unavailable).
        layer_weights: weights of ``conv1_1 .. conv5_1`` (DDColor's ``layer_weights``).
        criterion: ``"l1"`` (DDColor) or ``"l2"`` (mean squared error), per layer, mean-reduced.

    Attributes:
        weights_source: ``"cache"`` or ``"download"`` (ImageNet weights, see
            :mod:`colorlib.models.pretrained`), or ``"random"`` (``pretrained=False``, or the
            weights could not be had).

    Shape:
        ``forward(pred_rgb, target_rgb)``: two ``(B, 3, H, W)`` tensors in [0, 1], ``H, W >= 16``
        -> a 0-dim loss. Gradients flow to ``pred_rgb`` only.

    Example:
        >>> loss = PerceptualLoss(pretrained=False)
        >>> loss(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
        tensor(...)
    """

    def __init__(
        self,
        pretrained: bool = True,
        layer_weights: Sequence[float] = (0.0625, 0.125, 0.25, 0.5, 1.0),
        criterion: str = "l1",
    ) -> None:
        super().__init__()
        weights = tuple(float(w) for w in layer_weights)
        if len(weights) != len(LAYER_NAMES) or any(not w >= 0 for w in weights):
            raise ValueError(
                f"layer_weights must be {len(LAYER_NAMES)} non-negative numbers (for "
                f"{', '.join(LAYER_NAMES)}), got {tuple(layer_weights)}"
            )
        if criterion not in _CRITERIA:
            raise ValueError(f"criterion must be one of {sorted(_CRITERIA)}, got {criterion!r}")
        self.layer_weights, self.criterion = weights, criterion
        self.features = vgg16_bn_features()
        self.weights_source = _load_imagenet_weights(self.features) if pretrained else "random"
        self.features.requires_grad_(False).eval()
        self.register_buffer(
            "mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.features.eval()  # frozen BatchNorm statistics, whatever the parent does
        return self

    def extract(self, rgb: Tensor) -> list[Tensor]:
        """Features at ``conv1_1 .. conv5_1`` (pre-BatchNorm) of ``(B, 3, H, W)`` RGB in [0, 1]."""
        x = (rgb - self.mean) / self.std
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in LAYER_INDICES:
                taps.append(x)
        return taps

    def forward(self, pred_rgb: Tensor, target_rgb: Tensor) -> Tensor:
        for name, x in (("pred_rgb", pred_rgb), ("target_rgb", target_rgb)):
            if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != 3:
                shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(f"{name} must be a (B, 3, H, W) tensor in [0, 1], got {shape}")
        if pred_rgb.shape != target_rgb.shape:
            raise ValueError(
                f"pred_rgb {tuple(pred_rgb.shape)} != target {tuple(target_rgb.shape)}"
            )
        distance = _CRITERIA[self.criterion]
        with torch.no_grad():
            target_features = self.extract(target_rgb)
        loss = pred_rgb.new_zeros(())
        for weight, fake, real in zip(
            self.layer_weights, self.extract(pred_rgb), target_features, strict=True
        ):
            if weight:
                loss = loss + weight * distance(fake, real)
        return loss
