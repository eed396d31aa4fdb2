"""Pre-trained video weights from local files only (see shared/recipes/offline-weights.md).

A ``weights`` value in config (``models.video.weights``) is one of

- ``null``                      random initialisation;
- a path to a ``.pth`` file     a state dict of the encoder (torchvision's Kinetics-400
                                checkpoint, or one saved by us);
- a directory                   that directory holds torchvision's file under its own name
                                (e.g. ``mvit_v1_b-dbeb1030.pth``);
- ``kinetics400``               torchvision's file in ``$TORCH_HOME/hub/checkpoints/``
                                (where ``torchvision`` itself caches it).

Nothing is ever downloaded: a missing file raises :class:`WeightsNotFoundError`
saying which file to fetch once and where to put it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cinefm.config import ConfigError

log = logging.getLogger(__name__)

KINETICS_SENTINEL = "kinetics400"


class WeightsNotFoundError(ConfigError, FileNotFoundError):
    """A configured weights file is missing; the message names the key and what to place there."""


def hub_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (torchvision's download cache), without creating it."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_weights(
    weights: str | os.PathLike | None,
    filename: str | None,
    *,
    key: str = "models.video.weights",
    how_to_get: str = "",
) -> Path | None:
    """Map a ``weights`` config value to an existing file (or None for random init).

    ``filename`` is torchvision's checkpoint file name used for a directory or the
    ``kinetics400`` value; ``how_to_get`` is appended to the error message.
    """
    if weights is None:
        return None
    text = str(weights)
    if text.lower() == KINETICS_SENTINEL:
        if filename is None:
            raise ConfigError(f"{key}: '{KINETICS_SENTINEL}' has no torchvision checkpoint for this encoder; "
                              "give the path of a saved state dict or null")
        path = hub_checkpoint_dir() / filename
    else:
        path = Path(text).expanduser()
        if path.is_dir():
            if filename is None:
                raise ConfigError(f"{key}: {path} is a directory; give the path of the .pth state dict")
            path = path / filename
    if not path.is_file():
        raise WeightsNotFoundError(f"{key}: file not found: {path} — {how_to_get}".rstrip(" —"))
    return path


def read_state_dict(path: str | os.PathLike, *, key: str = "models.video.weights") -> dict[str, torch.Tensor]:
    """Load a plain tensor state dict (``torch.load(..., weights_only=True)``) on the CPU."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors come in many types
        raise ConfigError(f"{key}: cannot read {path} as a torch state dict: {err}") from err
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{key}: {path} is not a state dict of tensors "
                          f"(top-level keys: {list(obj)[:5] if isinstance(obj, Mapping) else type(obj).__name__})")
    return dict(obj)


def load_into(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    drop_prefixes: Iterable[str] = (),
    source: str = "",
    key: str = "models.video.weights",
) -> None:
    """``model.load_state_dict(state, strict=True)`` after dropping keys under ``drop_prefixes``.

    Used to drop a classifier head (``head.`` for MViT, ``fc.`` for R(2+1)D) that the
    trunk does not have. A mismatch raises ConfigError naming ``key`` and the keys.
    """
    drop = tuple(drop_prefixes)
    kept = {k: v for k, v in state.items() if not (drop and k.startswith(drop))}
    if len(kept) < len(state):
        log.info("%s: dropped %d classifier-head tensors (%s)", source or key, len(state) - len(kept), ", ".join(drop))
    try:
        model.load_state_dict(kept, strict=True)
    except RuntimeError as err:
        raise ConfigError(f"{key}: {source} does not fit the configured encoder "
                          f"({type(model).__name__}); check models.video.name/frames/size: {err}") from err


def state_dict_summary(state: Mapping[str, Any], n: int = 5) -> str:
    """A few keys of a state dict for error messages."""
    keys = list(state)
    more = f" … ({len(keys)} keys)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more
