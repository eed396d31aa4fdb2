"""Study-level model for downstream tasks: every view clip → embedding → gated-attention MIL → head.

``StudyModel`` (attribute names are the checkpoint contract):

- ``video``       the video trunk (:func:`cinefm.models.video.build_video_encoder`);
- ``video_proj``  ``nn.Linear(video.out_dim, projection_dim)``: the one-layer projection that
                  ends the video encoder in the method — *the encoder's last linear layer*;
- ``mil``         :class:`~cinefm.models.mil.GatedAttentionMIL` over the view embeddings
                  (``attention="shared"``: one for every output), or an ``nn.ModuleList`` of
                  one per output (``attention="per_output"``: each disease weighs the view
                  planes on its own, as the method's per-disease attention maps show);
- ``head``        ``nn.Linear(projection_dim, n_outputs)``: logits, one per disease
                  (the sigmoid lives in the loss, ``BCEWithLogitsLoss``) or one value for
                  regression (linear output). With per-output attention, row j of the
                  weight reads only output j's pooled embedding.

Training modes (the method's two): ``finetune`` — trunk frozen (no gradients, kept in eval
mode so BatchNorm statistics and stochastic depth do not move), ``video_proj`` + ``mil`` +
``head`` trained; ``transfer`` — everything trained.

The contrastive checkpoint: the pre-training LightningModule keeps its
:class:`~cinefm.models.clip.CLIPModel` as attribute ``model``, so a Lightning checkpoint's
``state_dict`` has keys ``model.video.*`` and ``model.video_proj.*``;
:func:`load_pretrained_video` copies exactly those into ``StudyModel.video``/``video_proj``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Literal, NamedTuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from cinefm.config import ConfigError
from cinefm.models.mil import GatedAttentionMIL
from cinefm.models.video import build_video_encoder
from cinefm.models.weights import state_dict_summary

log = logging.getLogger(__name__)

CKPT_PREFIX = "model."          # attribute name of the CLIPModel inside the pre-training LightningModule
COMPILED_INFIX = "_orig_mod."   # torch.compile wrapper, stripped when present
Mode = Literal["finetune", "transfer"]
Attention = Literal["shared", "per_output"]
ATTENTIONS = ("shared", "per_output")


class StudyOutput(NamedTuple):
    """``logits (B, n_outputs)``, per-view ``attention`` (0 on padding) and ``views (B, K, P)``.

    ``attention`` is ``(B, K)`` for a shared MIL and ``(B, n_outputs, K)`` for per-output MILs.
    """

    logits: torch.Tensor
    attention: torch.Tensor
    views: torch.Tensor


class StudyModel(nn.Module):
    """``forward(clips [B, K, C, T, H, W], mask [B, K] bool) -> StudyOutput``.

    Only real views (mask True) go through the video encoder; padded slots get a zero
    embedding that the MIL ignores.
    """

    def __init__(self, video: nn.Module, projection_dim: int, n_outputs: int, mil_hidden: int,
                 layer_norm: bool = False, attention: Attention = "shared", *, trunk_chunk: int = 0,
                 trunk_checkpoint: bool = False) -> None:
        super().__init__()
        if trunk_chunk < 0:
            raise ValueError(f"trunk_chunk must be >= 0 (0 = every clip at once), got {trunk_chunk}")
        self.trunk_chunk = int(trunk_chunk)
        self.trunk_checkpoint = bool(trunk_checkpoint)
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        self.video = video
        self.video_proj = nn.Linear(video.out_dim, projection_dim)
        self.per_output = attention == "per_output"
        if self.per_output:
            self.mil = nn.ModuleList(GatedAttentionMIL(projection_dim, mil_hidden, layer_norm=layer_norm)
                                     for _ in range(n_outputs))
        else:
            self.mil = GatedAttentionMIL(projection_dim, mil_hidden, layer_norm=layer_norm)
        self.head = nn.Linear(projection_dim, n_outputs)
        self.trunk_frozen = False

    def embed_views(self, clips: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Projected embeddings ``[B, K, P]`` of the real views; padded slots are 0."""
        if clips.dim() != 6:
            raise ValueError(f"StudyModel expects clips [B, K, C, T, H, W], got {tuple(clips.shape)}")
        real_bk = mask.bool()
        emb_np = self.video_proj(self.trunk(clips[real_bk]))
        views_bkp = emb_np.new_zeros(*real_bk.shape, emb_np.shape[-1])
        views_bkp[real_bk] = emb_np
        return views_bkp

    def trunk(self, clips_n: torch.Tensor) -> torch.Tensor:
        """The video encoder over clips ``[N, C, T, H, W]``, ``trunk_chunk`` clips per pass.

        The batch (and so the loss and its gradient) is unchanged: only how many clips' activations
        live at once. With ``trunk_checkpoint`` each chunk is an activation checkpoint
        (``torch.utils.checkpoint``, non-reentrant, RNG state preserved so stochastic depth draws
        the same paths when recomputed): only the chunk outputs are kept and each chunk's
        activations are recomputed in backward, one chunk at a time. Identical to one pass for
        trunks with per-sample normalisation (MViT's LayerNorm, the Perceiver); a BatchNorm trunk
        (R(2+1)D) in training mode normalises by each chunk's statistics instead of the batch's.
        """
        n = clips_n.shape[0]
        size = self.trunk_chunk or n
        if size >= n and not self.trunk_checkpoint:
            return self.video(clips_n)
        recompute = self.trunk_checkpoint and torch.is_grad_enabled() and any(
            p.requires_grad for p in self.video.parameters())
        outs = []
        for start in range(0, n, size):
            chunk = clips_n[start:start + size]
            outs.append(checkpoint(self.video, chunk, use_reentrant=False) if recompute else self.video(chunk))
        return torch.cat(outs)

    def forward(self, clips: torch.Tensor, mask: torch.Tensor | None = None) -> StudyOutput:
        if mask is None:
            mask = torch.ones(clips.shape[:2], dtype=torch.bool, device=clips.device)
        if bool((~mask.bool().any(1)).any()):
            raise ValueError("StudyModel: a study of the batch has no real view (mask all False)")
        views_bkp = self.embed_views(clips, mask)
        if not self.per_output:
            pooled_bp, attention_bk = self.mil(views_bkp, mask)
            return StudyOutput(self.head(pooled_bp), attention_bk, views_bkp)
        pooled, attention = zip(*(mil(views_bkp, mask) for mil in self.mil), strict=True)
        pooled_bjp, attention_bjk = torch.stack(pooled, 1), torch.stack(attention, 1)
        logits_bj = torch.einsum("bjp,jp->bj", pooled_bjp, self.head.weight) + self.head.bias
        return StudyOutput(logits_bj, attention_bjk, views_bkp)

    def view_logits(self, views_bkp: torch.Tensor) -> torch.Tensor:
        """``(B, K, n_outputs)``: the logits each view alone would give, as a study of that one view.

        Attention over a single view is 1, so the pooled embedding is the view's own
        (normalised) embedding and the head reads it. Padded slots give meaningless values;
        callers select the real views with the mask.
        """
        if not self.per_output:
            return self.head(self.mil.norm(views_bkp))
        normed_bkjp = torch.stack([mil.norm(views_bkp) for mil in self.mil], 2)
        return torch.einsum("bkjp,jp->bkj", normed_bkjp, self.head.weight) + self.head.bias

    def train(self, mode: bool = True) -> StudyModel:
        """As ``nn.Module.train``, but a frozen trunk stays in eval mode (finetune mode)."""
        super().train(mode)
        if self.trunk_frozen:
            self.video.eval()
        return self


def set_finetune_mode(model: StudyModel) -> StudyModel:
    """Freeze the video trunk; train only ``video_proj`` (the encoder's last linear layer), ``mil`` and ``head``."""
    for p in model.parameters():
        p.requires_grad_(False)
    for module in (model.video_proj, model.mil, model.head):
        for p in module.parameters():
            p.requires_grad_(True)
    model.trunk_frozen = True
    model.train(model.training)
    return model


def set_transfer_mode(model: StudyModel) -> StudyModel:
    """Make every parameter trainable (transfer learning)."""
    for p in model.parameters():
        p.requires_grad_(True)
    model.trunk_frozen = False
    model.train(model.training)
    return model


def set_mode(model: StudyModel, mode: Mode) -> StudyModel:
    """Apply ``finetune`` or ``transfer`` (config ``mode`` of a fine-tuning experiment)."""
    if mode == "finetune":
        return set_finetune_mode(model)
    if mode == "transfer":
        return set_transfer_mode(model)
    raise ConfigError(f"mode: {mode!r} is not 'finetune' or 'transfer'")


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimizer should receive (``requires_grad`` True)."""
    return [p for p in model.parameters() if p.requires_grad]


def build_study_model(video_cfg: dict, *, projection_dim: int, n_outputs: int, mil_hidden: int,
                      layer_norm: bool = False, attention: Attention = "shared", trunk_chunk: int = 0,
                      trunk_checkpoint: bool = False) -> StudyModel:
    """``StudyModel`` with the encoder of ``models.video`` (its ``weights`` → Kinetics init, null → random)."""
    return StudyModel(build_video_encoder(**video_cfg), projection_dim, n_outputs, mil_hidden, layer_norm,
                      attention, trunk_chunk=trunk_chunk, trunk_checkpoint=trunk_checkpoint)


def _read_checkpoint(path: str | os.PathLike) -> Mapping[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise ConfigError(f"pre-trained checkpoint not found: {path} — run the pretrain rule first "
                          "or point the experiment's init at an existing last.ckpt") from err
    except Exception:  # noqa: BLE001 - Lightning may pickle non-tensor hyper-parameters
        log.warning("%s: not loadable with weights_only=True; loading it as a trusted pipeline checkpoint", path)
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{path}: neither a state dict nor a Lightning checkpoint with a 'state_dict'")
    return obj


def _sub_state(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_pretrained_video(study_model: StudyModel, ckpt_path: str | os.PathLike,
                          prefix: str = CKPT_PREFIX) -> int:
    """Copy the contrastive checkpoint's ``video`` trunk and ``video_proj`` into ``study_model``.

    ``ckpt_path``: a Lightning checkpoint (``{"state_dict": {"model.video.…": …}}``, prefix
    ``model.`` = the LightningModule attribute holding the CLIPModel) or a plain CLIPModel
    state dict (``video.…``, ``video_proj.…``); ``_orig_mod.`` (torch.compile) is stripped.
    The text tower and temperature are ignored. Returns the number of tensors loaded.
    """
    raw = _read_checkpoint(ckpt_path)
    state = {k.replace(COMPILED_INFIX, ""): v for k, v in raw.items()}
    if any(k.startswith(prefix + "video.") for k in state):
        state = _sub_state(state, prefix)
    video, proj = _sub_state(state, "video."), _sub_state(state, "video_proj.")
    if not video or not proj:
        raise ConfigError(f"{ckpt_path}: no '{prefix}video.*' / '{prefix}video_proj.*' (or 'video.*' / "
                          f"'video_proj.*') keys; found {state_dict_summary(raw)}")
    try:
        study_model.video.load_state_dict(video, strict=True)
    except RuntimeError as err:
        raise ConfigError(f"{ckpt_path}: its video encoder does not match models.video (name, sizes, "
                          f"options must equal the pre-training run's): {err}") from err
    try:
        study_model.video_proj.load_state_dict(proj, strict=True)
    except RuntimeError as err:
        raise ConfigError(f"{ckpt_path}: video_proj does not match models.projection_dim: {err}") from err
    log.info("loaded %d video tensors + projection from %s", len(video), ckpt_path)
    return len(video) + len(proj)
