"""Colorization as classification (Zhang, Isola, Efros, ECCV 2016): a trunk and a bin classifier.

Design:

* a *trunk* from the registry (``"unet"`` or ``"resnet-unet"``) built with ``out_channels =
  num_features`` instead of 2, so it paints a feature map rather than ab. Both trunks end in
  ``tanh``: the features are bounded in [-1, 1], and the head, a 1x1 convolution, turns them
  into ``Q`` logits per position (its weights set the logit scale, so the bound limits nothing
  the optimiser cannot grow). This keeps the trunks exactly as the L1 models train them, so the
  comparison with "pretrained-l1" differs only in the head and the loss;
* as in the paper, the distribution is predicted at ``1/downsample`` of the input resolution
  (``downsample = 4``, a quarter of each side, is the paper's choice): the trunk's features are
  average-pooled (kernel = stride = ``downsample``) before the head. A 1x1 convolution is
  affine per pixel, so it commutes with average pooling: the logits equal the average pool of
  full-resolution logits, at ``downsample**2`` times less work in the head, and above all in
  the loss (soft encoding and log-softmax over Q channels per position). The decoded ab is
  upsampled (bilinear) to the input's size; the L channel stays at full resolution.
  ``downsample = 1`` predicts per pixel;
* the bins are the sRGB-gamut centres of :func:`colorlib.ab_bins.gamut_bins` (Q = 229) unless
  ``centres`` are given; they are a buffer in Lab units (saved with the weights);
* ``forward(L)`` returns normalised ab, decoded with the annealed mean at :attr:`temperature`,
  so validation, ``colorize`` and the evaluation use the classifier like any other
  generator, at the input's full size. ``forward(L, return_logits=True)`` (or :meth:`logits`)
  gives the ``(B, Q, H/d, W/d)`` scores (``d = downsample``) that the training loss needs;
  asking through ``forward`` keeps a DDP wrapper in the path, so its gradients are still
  synchronised;
* ``model_kwargs`` rebuild the network (the trunk's own ``model_kwargs``, ``encoder="auto"``
  resolved, ``downsample`` and the current temperature): ``build_model("classifier",
  pretrained=False, **model.model_kwargs)``, as for
  :class:`~colorlib.models.resnet_unet.ResNetUNet`.

>>> net = ClassificationColorizer("unet", {"base_channels": 8, "num_downs": 5})
>>> net(torch.zeros(1, 1, 32, 32)).shape, net.logits(torch.zeros(1, 1, 32, 32)).shape
(torch.Size([1, 2, 32, 32]), torch.Size([1, 229, 8, 8]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorlib.ab_bins import annealed_mean, gamut_bins, mode_ab
from colorlib.models import build_model

__all__ = ["ClassificationColorizer", "TRUNKS"]

#: registry names that can carry the classification head
TRUNKS = ("unet", "resnet-unet")


def _centres(centres: Sequence[Sequence[float]] | None) -> Tensor:
    if centres is None:
        return gamut_bins()
    table = torch.as_tensor(centres, dtype=torch.float32)
    if table.dim() != 2 or table.shape[1] != 2 or len(table) < 2:
        raise ValueError(
            f"centres must be a list of at least 2 (a, b) pairs in Lab units, got shape "
            f"{tuple(table.shape)}"
        )
    return table


class ClassificationColorizer(nn.Module):
    """Zhang et al.'s colorizer: ``L (B, 1, H, W) in [-1, 1] -> ab (B, 2, H, W)`` via Q bins,
    predicted at ``1/downsample`` of the resolution.

    Args:
        trunk: registry name of the trunk, ``"unet"`` or ``"resnet-unet"``.
        trunk_kwargs: the trunk's keyword arguments (its ``out_channels`` is set here).
        num_features: channels of the trunk's (tanh-bounded) output, the head's input.
        centres: ``(Q, 2)`` bin centres in Lab units as nested lists; None: the sRGB gamut
            bins (Q = 229).
        temperature: annealed-mean temperature of :meth:`forward` (0.38 in the paper).
        pretrained: ImageNet weights for a trunk that has an encoder (``False`` when a
            checkpoint's weights are loaded next).
        downsample: the logits' resolution is the input's divided by this (4 in the paper; 1:
            per pixel). The trunk's ``required_multiple`` must be a multiple of it.

    Attributes:
        centres: ``(Q, 2)`` buffer, Lab units.
        temperature: settable; ``> 0``.
        downsample: the logits' resolution divisor (fixed at construction).
        encoder_source: the trunk's (``"imagenet:resnet18"``, ``"random"``...), or None.
        model_kwargs: keyword arguments that rebuild this network (see the module doc).

    Example:
        >>> net = ClassificationColorizer("resnet-unet", {"encoder": "auto"}, pretrained=False)
        >>> net.decode(net.logits(L), temperature=1.0)  # the plain mean, (B, 2, H/4, W/4)
        >>> net.decode(net.logits(L), size=L.shape[-2:])  # upsampled: (B, 2, H, W)

    Raises:
        ValueError: an unknown trunk, bad ``num_features``/``centres``/``downsample``, or a
            trunk whose ``required_multiple`` is not a multiple of ``downsample``.
    """

    def __init__(
        self,
        trunk: str = "resnet-unet",
        trunk_kwargs: dict | None = None,
        num_features: int = 128,
        centres: Sequence[Sequence[float]] | None = None,
        temperature: float = 0.38,
        pretrained: bool = True,
        downsample: int = 4,
    ) -> None:
        super().__init__()
        if trunk not in TRUNKS:
            raise ValueError(f"unknown trunk {trunk!r}; choose one of {list(TRUNKS)}")
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be an int >= 1, got {num_features!r}")
        if isinstance(downsample, bool) or not isinstance(downsample, int) or downsample < 1:
            raise ValueError(f"downsample must be an int >= 1, got {downsample!r}")
        kwargs = dict(trunk_kwargs or {})
        if "out_channels" in kwargs:
            raise ValueError("trunk_kwargs must not set out_channels: num_features sets it")
        self.trunk_name, self.num_features = trunk, num_features
        self._given_centres = None if centres is None else [list(map(float, c)) for c in centres]
        self.register_buffer("centres", _centres(centres))
        self.temperature = temperature
        self.trunk = build_model(trunk, pretrained=pretrained, out_channels=num_features, **kwargs)
        if self.trunk.required_multiple % downsample:
            raise ValueError(
                f"downsample {downsample} must divide the trunk's required_multiple "
                f"{self.trunk.required_multiple} (every valid input size must pool exactly)"
            )
        self.downsample = downsample
        self.head = nn.Conv2d(num_features, len(self.centres), kernel_size=1)
        self.encoder_source = getattr(self.trunk, "encoder_source", None)

    @property
    def temperature(self) -> float:
        """Annealed-mean temperature of :meth:`forward`, ``> 0``."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"temperature must be a number > 0, got {value!r}")
        self._temperature = float(value)

    @property
    def num_bins(self) -> int:
        """Q, the number of colour classes."""
        return len(self.centres)

    @property
    def required_multiple(self) -> int:
        """Input height and width must be multiples of this (the trunk's, a multiple of
        :attr:`downsample`)."""
        return self.trunk.required_multiple

    @property
    def model_kwargs(self) -> dict:
        """Keyword arguments that rebuild this architecture (without ``pretrained``)."""
        trunk = {k: v for k, v in self.trunk.model_kwargs.items() if k != "out_channels"}
        return dict(
            trunk=self.trunk_name,
            trunk_kwargs=trunk,
            num_features=self.num_features,
            centres=self._given_centres,
            temperature=self.temperature,
            downsample=self.downsample,
        )

    def logits(self, L: Tensor) -> Tensor:
        """Bin scores: ``L (B, 1, H, W) -> (B, Q, H/d, W/d)``, unnormalised (``d = downsample``).

        The trunk's features are average-pooled before the 1x1 head; the head commutes with
        the pooling, so this is the average pool of per-pixel logits, ``d**2`` times cheaper.

        Raises:
            ValueError: wrong shape, or ``H``/``W`` not multiples of :attr:`required_multiple`.
        """
        if L.dim() == 4 and (L.shape[-2] % self.downsample or L.shape[-1] % self.downsample):
            raise ValueError(
                f"input size {L.shape[-2]}x{L.shape[-1]} must be divisible by downsample "
                f"{self.downsample}"
            )
        features = self.trunk(L)  # (B, num_features, H, W) in [-1, 1]
        if self.downsample > 1:
            d = self.downsample
            features = F.avg_pool2d(features, kernel_size=d, stride=d)  # (B, C, H/d, W/d)
        return self.head(features)  # (B, Q, H/d, W/d)

    def _upsample(self, ab: Tensor, size: Sequence[int] | None) -> Tensor:
        """``ab (B, 2, h, w)`` bilinearly resized to ``size`` (H, W); unchanged when equal."""
        if size is None:
            return ab
        size = tuple(int(n) for n in size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (H, W) with positive sides, got {size}")
        if size == tuple(ab.shape[-2:]):
            return ab
        return F.interpolate(ab, size=size, mode="bilinear", align_corners=False)

    def decode(
        self,
        logits: Tensor,
        temperature: float | None = None,
        size: Sequence[int] | None = None,
    ) -> Tensor:
        """Annealed mean of ``logits (B, Q, h, w)`` -> ab, normalised, float32.

        The mean is taken at the logits' resolution, then (when ``size`` is given and differs)
        the ab is upsampled bilinearly (``align_corners=False``).

        Args:
            temperature: ``T > 0``; None: :attr:`temperature`.
            size: ``(H, W)`` of the result (e.g. ``L.shape[-2:]``); None: ``(h, w)``.
        """
        T = self.temperature if temperature is None else temperature
        return self._upsample(annealed_mean(logits, self.centres, T), size)

    def decode_mode(self, logits: Tensor, size: Sequence[int] | None = None) -> Tensor:
        """The most likely bin of ``logits (B, Q, h, w)`` (:func:`~colorlib.ab_bins.mode_ab`),
        upsampled to ``size`` as in :meth:`decode`: ab normalised, float32."""
        return self._upsample(mode_ab(logits, self.centres), size)

    def forward(self, L: Tensor, return_logits: bool = False) -> Tensor:
        """Colourise: ``L (B, 1, H, W) -> ab (B, 2, H, W)`` (full size), or the low-resolution
        ``(B, Q, H/d, W/d)`` logits.

        Raises:
            ValueError: wrong shape, or ``H``/``W`` not multiples of :attr:`required_multiple`.
        """
        logits = self.logits(L)
        return logits if return_logits else self.decode(logits, size=L.shape[-2:])

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``; the trunk loads its part first, so a ResNetUNet trunk
        built with ``encoder="auto"`` adopts the checkpoint's encoder (as it does alone)."""
        prefix = "trunk."
        trunk = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
        self.trunk.load_state_dict(trunk, strict=strict, assign=assign)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def extra_repr(self) -> str:
        return (
            f"trunk={self.trunk_name!r}, num_bins={self.num_bins}, T={self.temperature:g}, "
            f"downsample={self.downsample}"
        )
