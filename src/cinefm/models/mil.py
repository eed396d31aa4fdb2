"""Gated attention pooling over the views of a study (attention-based MIL, Ilse et al. 2018)."""

from __future__ import annotations

import torch
from torch import nn


class GatedAttentionMIL(nn.Module):
    """Pool ``K`` view embeddings of a study into one, with gated attention weights.

    a_k = softmax_k( wᵀ (tanh(V h_k) ⊙ sigmoid(U h_k)) ) over the real views of the study,
    pooled = Σ_k a_k h_k (Ilse, Tomczak & Welling 2018, "Attention-based deep multiple
    instance learning", Eq. 9). With ``layer_norm=True`` every h_k is first replaced by
    LayerNorm(h_k) (the method's classification setting) and the pooled vector is the
    weighted sum of the normalised embeddings.

    ``forward(h (B, K, dim), mask (B, K) bool, True = real view) -> (pooled (B, dim),
    attention (B, K))``; attention sums to 1 over real views and is exactly 0 on padding,
    whose embeddings (even NaN/inf) never reach the output. A study with no real view
    raises ValueError.
    """

    def __init__(self, dim: int, hidden: int, layer_norm: bool = False) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if layer_norm else nn.Identity()
        self.V = nn.Linear(dim, hidden)
        self.U = nn.Linear(dim, hidden)
        self.w = nn.Linear(hidden, 1, bias=False)  # a bias cancels in the softmax

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if h.dim() != 3:
            raise ValueError(f"GatedAttentionMIL expects h (B, K, dim), got {tuple(h.shape)}")
        if mask is None:
            mask = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
        mask = mask.bool()
        if mask.shape != h.shape[:2]:
            raise ValueError(f"mask {tuple(mask.shape)} does not match h {tuple(h.shape[:2])} (B, K)")
        empty = ~mask.any(dim=1)
        if bool(empty.any()):
            raise ValueError(f"GatedAttentionMIL: studies {empty.nonzero().flatten().tolist()} of the batch "
                             "have no real view (mask all False)")
        h_bkd = self.norm(torch.where(mask.unsqueeze(-1), h, torch.zeros((), dtype=h.dtype, device=h.device)))
        score_bk = self.w(torch.tanh(self.V(h_bkd)) * torch.sigmoid(self.U(h_bkd))).squeeze(-1)
        score_bk = score_bk.masked_fill(~mask, float("-inf"))
        attention_bk = torch.softmax(score_bk, dim=1)
        pooled_bd = torch.einsum("bk,bkd->bd", attention_bk, h_bkd.masked_fill(~mask.unsqueeze(-1), 0.0))
        return pooled_bd, attention_bk
