"""Video encoders by name: ``build_video_encoder(name, **cfg) -> nn.Module``.

Every encoder maps a clip ``x: [B, C, T, H, W]`` (C = 3: grey cine frames repeated,
normalised by the data layer) to one vector ``[B, D]`` and exposes ``out_dim = D``.
The classifier heads of the torchvision models are removed (replaced by identity).

| name          | trunk                                                   | D            | input               |
|---------------|---------------------------------------------------------|--------------|---------------------|
| ``mvit_v1_b`` | torchvision MViT-B (Fan et al. 2021), 36.3M parameters  | 768          | exactly frames×size×size |
| ``mvit_small``| torchvision ``MViT`` with a small ``block_setting``     | ``dims[-1]`` | exactly frames×size×size |
| ``r2plus1d_18``| torchvision R(2+1)D-18 (Tran et al. 2018), ``fc`` removed | 512        | any T, H, W         |
| ``perceiver_io``| :class:`cinefm.models.perceiver.PerceiverIOEncoder`   | ``latent_dim``| any T, H, W (multiples of the tubelet) |

MViT output is the class token after the final LayerNorm. Config (``models.video``):
``name``, ``weights`` (see :mod:`cinefm.models.weights`), ``frames``, ``size``,
``stochastic_depth`` (MViT only) and one nested section per configurable encoder
(``mvit_small: {...}``, ``perceiver_io: {...}``) whose keys are that builder's keyword
arguments; ``build_video_encoder(**config["models"]["video"])`` works as is.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.video import MViT, r2plus1d_18
from torchvision.models.video.mvit import MSBlockConfig

from cinefm.config import ConfigError
from cinefm.models.perceiver import PerceiverIOEncoder
from cinefm.models.weights import load_into, read_state_dict, resolve_weights

log = logging.getLogger(__name__)

WeightsArg = str | os.PathLike | None

MVIT_V1_B_FILE = "mvit_v1_b-dbeb1030.pth"
R2PLUS1D_18_FILE = "r2plus1d_18-91a641e6.pth"
# MViT-B stages (Fan et al. 2021, Table 3), as torchvision's ``mvit_v1_b`` block table.
MVIT_V1_B_STAGES = {"dims": (96, 192, 384, 768), "heads": (1, 2, 4, 8), "depths": (1, 2, 11, 2), "kv_stride": 8}

# Options shared by all encoders; every other key must be a nested per-encoder section.
COMMON_KEYS = frozenset({"weights", "frames", "size", "stochastic_depth"})
SECTION_KEYS = frozenset({"mvit_small", "perceiver_io"})
OWN_WEIGHTS = "give the path of a state dict saved from this encoder (no public pre-trained weights), or null"


def _how_to_get(enum: str, builder: str, filename: str) -> str:
    return (f"download torchvision's {enum} once where a network is reachable, e.g. "
            f"`python -c \"import torchvision.models.video as v; v.{builder}(weights='KINETICS400_V1')\"` "
            f"(saves {filename} under $TORCH_HOME/hub/checkpoints/), and place the .pth at "
            "models.video.weights (or set it to 'kinetics400' to read it from $TORCH_HOME/hub/checkpoints)")


class ClipShapeCheck:
    """Forward pre-hook: refuse clips whose (T, H, W) differ from the size the MViT was built for.

    (A class, not a closure, so a model carrying it can be pickled.)
    """

    def __init__(self, expected: tuple[int, int, int]) -> None:
        self.expected = expected

    def __call__(self, module: nn.Module, args: tuple) -> None:
        x = args[0]
        if x.dim() != 5 or tuple(x.shape[2:]) != self.expected:
            raise ValueError(f"{type(module).__name__} expects clips [B, C, T, H, W] with (T, H, W) = "
                             f"{self.expected} (models.video.frames/size), got {tuple(x.shape)}")


def _as_mvit_trunk(model: MViT, frames: int, size: int) -> MViT:
    """Drop MViT's classifier (→ class token after norm) and check clip shapes at the door."""
    model.head = nn.Identity()
    model.out_dim = model.norm.normalized_shape[0]
    model.register_forward_pre_hook(ClipShapeCheck((frames, size, size)))
    return model


def mvit_block_setting(
    dims: Sequence[int], heads: Sequence[int], depths: Sequence[int], kv_stride: int
) -> list[MSBlockConfig]:
    """MViT-v1 block configs for stages of ``depths[s]`` blocks at width ``dims[s]``.

    MViT-B's pattern (Fan et al. 2021, Table 3): the first block of every stage after the
    first pools queries by (1, 2, 2); the last block of a stage projects to the next
    stage's width; keys/values are pooled by ``kv_stride`` in the first stage, halved per
    stage (at least 1), kernels 3×3×3. ``dims=[96, 192, 384, 768], heads=[1, 2, 4, 8],
    depths=[1, 2, 11, 2], kv_stride=8`` reproduces torchvision's ``mvit_v1_b``.
    """
    if not (len(dims) == len(heads) == len(depths)) or not dims:
        raise ConfigError("models.video.mvit_small: dims, heads and depths need one entry per stage "
                          f"(got {len(dims)}, {len(heads)}, {len(depths)})")
    for d, h in zip(dims, heads, strict=True):
        if d % h:
            raise ConfigError(f"models.video.mvit_small: width {d} is not divisible by {h} heads")
    if len(dims) > 1 and depths[-1] == 1:
        log.warning("models.video.mvit_small: the last stage has one block, whose query pooling only "
                    "affects patch tokens that the class-token output never sees; use depth >= 2 there")
    blocks: list[MSBlockConfig] = []
    for s, (dim, n_heads, depth) in enumerate(zip(dims, heads, depths, strict=True)):
        kv = max(1, kv_stride // 2**s)
        for i in range(depth):
            pool_q = s > 0 and i == 0
            last = i == depth - 1 and s < len(dims) - 1
            blocks.append(MSBlockConfig(
                num_heads=n_heads,
                input_channels=dim,
                output_channels=dims[s + 1] if last else dim,
                kernel_q=[3, 3, 3] if pool_q else [],
                kernel_kv=[3, 3, 3],
                stride_q=[1, 2, 2] if pool_q else [],
                stride_kv=[1, kv, kv],
            ))
    return blocks


def _resize_mvit_positions(state: dict[str, torch.Tensor], model: MViT) -> dict[str, torch.Tensor]:
    """Interpolate MViT's absolute position embeddings to the model's token grid.

    Lets Kinetics weights (16×224×224 → 8×56×56 tokens) initialise a trunk built for
    another frames/size: spatial table bicubic in 2-D, temporal table linear.
    """
    out = dict(state)
    for name, target in (("pos_encoding.spatial_pos", model.pos_encoding.spatial_size),
                         ("pos_encoding.temporal_pos", (model.pos_encoding.temporal_size,))):
        src = state.get(name)
        if src is None or src.shape[0] == _prod(target):
            continue
        c = src.shape[1]
        if len(target) == 2:
            side = round(src.shape[0] ** 0.5)
            grid = src.T.reshape(1, c, side, side)
            resized = F.interpolate(grid, size=target, mode="bicubic", align_corners=False)
        else:
            resized = F.interpolate(src.T.reshape(1, c, -1), size=target, mode="linear", align_corners=False)
        out[name] = resized.reshape(c, -1).T.contiguous()
        log.info("resized %s from %d to %d positions", name, src.shape[0], out[name].shape[0])
    return out


def _prod(xs: Sequence[int]) -> int:
    n = 1
    for x in xs:
        n *= x
    return n


def _load_weights(model: nn.Module, path: Path | None, drop_prefixes: tuple[str, ...]) -> None:
    """Load a resolved weights file into ``model`` (no-op for None = random init)."""
    if path is None:
        return
    state = read_state_dict(path)
    if isinstance(model, MViT):
        state = _resize_mvit_positions(state, model)
    load_into(model, state, drop_prefixes=drop_prefixes, source=str(path))
    log.info("loaded video weights from %s", path)


def build_mvit_v1_b(*, frames: int = 16, size: int = 224, weights: WeightsArg = None,
                    stochastic_depth: float = 0.2) -> MViT:
    """torchvision ``mvit_v1_b`` trunk (36.3M parameters, D = 768), optional local Kinetics-400 weights."""
    path = resolve_weights(weights, MVIT_V1_B_FILE,
                           how_to_get=_how_to_get("MViT_V1_B_Weights.KINETICS400_V1", "mvit_v1_b", MVIT_V1_B_FILE))
    # torchvision's ``mvit_v1_b`` builder fixes 16×224×224; the same network is built
    # here from its block table so other clip sizes work (a test checks they are identical).
    model = MViT(
        spatial_size=(size, size),
        temporal_size=frames,
        block_setting=mvit_block_setting(**MVIT_V1_B_STAGES),
        residual_pool=False,
        residual_with_cls_embed=False,
        rel_pos_embed=False,
        proj_after_attn=False,
        stochastic_depth_prob=stochastic_depth,
    )
    model = _as_mvit_trunk(model, frames, size)
    _load_weights(model, path, drop_prefixes=("head.",))
    return model


def build_mvit_small(*, frames: int = 8, size: int = 64, weights: WeightsArg = None,
                     stochastic_depth: float = 0.0, dims: Sequence[int] = (32, 64, 128),
                     heads: Sequence[int] = (1, 2, 4), depths: Sequence[int] = (1, 1, 1),
                     kv_stride: int = 4) -> MViT:
    """A small MViT-v1 (torchvision ``MViT`` class) for CPU runs; D = ``dims[-1]``.

    Patch embedding as MViT-B (kernel 3×7×7, stride 2×4×4), absolute positions, no
    residual pooling: the same family as ``mvit_v1_b``, only narrower and shallower.
    """
    path = resolve_weights(weights, None, how_to_get=OWN_WEIGHTS)
    model = MViT(
        spatial_size=(size, size),
        temporal_size=frames,
        block_setting=mvit_block_setting(dims, heads, depths, kv_stride),
        residual_pool=False,
        residual_with_cls_embed=False,
        rel_pos_embed=False,
        proj_after_attn=False,
        stochastic_depth_prob=stochastic_depth,
        num_classes=1,
    )
    model = _as_mvit_trunk(model, frames, size)
    _load_weights(model, path, drop_prefixes=("head.",))
    return model


def build_r2plus1d_18(*, frames: int = 16, size: int = 112, weights: WeightsArg = None,
                      stochastic_depth: float = 0.0) -> nn.Module:
    """torchvision R(2+1)D-18 trunk without ``fc`` (D = 512); accepts any clip size.

    ``frames``, ``size`` and ``stochastic_depth`` are not used by this CNN.
    """
    del frames, size, stochastic_depth
    path = resolve_weights(weights, R2PLUS1D_18_FILE,
                           how_to_get=_how_to_get("R2Plus1D_18_Weights.KINETICS400_V1", "r2plus1d_18",
                                                  R2PLUS1D_18_FILE))
    model = r2plus1d_18(weights=None)
    model.fc = nn.Identity()
    model.out_dim = 512
    _load_weights(model, path, drop_prefixes=("fc.",))
    return model


def build_perceiver_io(*, frames: int = 32, size: int = 112, weights: WeightsArg = None,
                       stochastic_depth: float = 0.0, **options) -> PerceiverIOEncoder:
    """Perceiver IO encoder (:mod:`cinefm.models.perceiver`); ``options`` are its keyword arguments.

    ``frames``/``size`` set the Fourier features' maximum resolution; ``stochastic_depth`` is unused.
    """
    del stochastic_depth
    allowed = set(inspect.signature(PerceiverIOEncoder).parameters) - {"frames", "size"}
    if set(options) - allowed:
        raise ConfigError(f"models.video.perceiver_io: unknown option(s) {sorted(set(options) - allowed)}; "
                          f"known: {sorted(allowed)}")
    path = resolve_weights(weights, None, how_to_get=OWN_WEIGHTS)
    model = PerceiverIOEncoder(frames=frames, size=size, **options)
    _load_weights(model, path, drop_prefixes=())
    return model


VIDEO_ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "mvit_v1_b": build_mvit_v1_b,
    "mvit_small": build_mvit_small,
    "r2plus1d_18": build_r2plus1d_18,
    "perceiver_io": build_perceiver_io,
}


def build_video_encoder(name: str, **cfg) -> nn.Module:
    """Build the video encoder ``name`` from the ``models.video`` config section.

    ``forward(x: [B, C, T, H, W]) -> [B, out_dim]``. Common keys: ``weights``, ``frames``,
    ``size``, ``stochastic_depth``; the nested section named like the encoder
    (``mvit_small``, ``perceiver_io``) supplies its own options, other sections are ignored.
    """
    if name not in VIDEO_ENCODERS:
        raise ConfigError(f"models.video.name: unknown encoder {name!r}; choose one of {sorted(VIDEO_ENCODERS)}")
    unknown = set(cfg) - COMMON_KEYS - SECTION_KEYS
    if unknown:
        raise ConfigError(f"models.video: unknown key(s) {sorted(unknown)}; common keys are {sorted(COMMON_KEYS)}, "
                          f"encoder options go in a section named like the encoder ({sorted(SECTION_KEYS)})")
    common = {k: v for k, v in cfg.items() if k in COMMON_KEYS}
    own = dict(cfg.get(name) or {})
    builder = VIDEO_ENCODERS[name]
    params = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    bad = sorted(k for k in own if k in COMMON_KEYS or (k not in params and not takes_any))
    if bad:
        raise ConfigError(f"models.video.{name}: unknown option(s) {bad}")
    return builder(**common, **own)
