import pytest
import torch

from cinefm.models.mil import GatedAttentionMIL


@pytest.fixture(params=[False, True], ids=["plain", "layer_norm"])
def mil(request):
    torch.manual_seed(0)
    return GatedAttentionMIL(dim=8, hidden=6, layer_norm=request.param)


def test_attention_follows_the_gated_formula():
    mil = GatedAttentionMIL(dim=8, hidden=6)
    h = torch.randn(2, 4, 8)
    pooled, att = mil(h)
    for b in range(2):
        scores = torch.stack([mil.w.weight[0] @ (torch.tanh(mil.V(h[b, k])) * torch.sigmoid(mil.U(h[b, k])))
                              for k in range(4)])
        a = torch.exp(scores) / torch.exp(scores).sum()
        torch.testing.assert_close(att[b], a)
        torch.testing.assert_close(pooled[b], (a[:, None] * h[b]).sum(0))


def test_layer_norm_variant_pools_normalised_embeddings():
    mil = GatedAttentionMIL(dim=8, hidden=6, layer_norm=True)
    h = 5 * torch.randn(1, 3, 8) + 2
    pooled, att = mil(h)
    normed = torch.nn.functional.layer_norm(h, (8,))
    torch.testing.assert_close(pooled[0], (att[0, :, None] * normed[0]).sum(0))


def test_pooling_is_invariant_to_view_order(mil):
    h = torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 1, 0, 1]], dtype=torch.bool)
    perm = torch.tensor([3, 0, 4, 1, 2])
    pooled, att = mil(h, mask)
    pooled_p, att_p = mil(h[:, perm], mask[:, perm])
    torch.testing.assert_close(pooled_p, pooled)
    torch.testing.assert_close(att_p, att[:, perm])


def test_padded_garbage_views_change_nothing(mil):
    h = torch.randn(2, 3, 8)
    pooled, att = mil(h)
    garbage = torch.tensor([float("nan"), float("inf"), 1e6]).repeat(2, 3, 3)[..., :8]                  # (2, 3, 8)
    h_pad = torch.cat([h[:, :1], garbage[:, :1], h[:, 1:], garbage[:, 1:]], dim=1)   # (2, 6, 8)
    mask = torch.tensor([True, False, True, True, False, False]).expand(2, 6)
    pooled_pad, att_pad = mil(h_pad, mask)
    torch.testing.assert_close(pooled_pad, pooled)
    assert torch.equal(att_pad[:, ~mask[0]], torch.zeros(2, 3))
    torch.testing.assert_close(att_pad[:, mask[0]], att)


def test_attention_sums_to_one_over_real_views(mil):
    h = torch.randn(4, 6, 8)
    mask = torch.rand(4, 6) > 0.5
    mask[:, 0] = True
    _, att = mil(h, mask)
    torch.testing.assert_close(att.sum(1), torch.ones(4))
    assert (att[~mask] == 0).all() and (att[mask] > 0).all()


def test_a_single_view_gets_all_the_attention(mil):
    h = torch.randn(2, 1, 8)
    pooled, att = mil(h)
    assert torch.equal(att, torch.ones(2, 1))
    expect = h[:, 0] if isinstance(mil.norm, torch.nn.Identity) else mil.norm(h[:, 0])
    torch.testing.assert_close(pooled, expect)


def test_a_study_without_real_views_is_an_error(mil):
    mask = torch.tensor([[True, False], [False, False]])
    with pytest.raises(ValueError, match=r"studies \[1\] .* no real view"):
        mil(torch.randn(2, 2, 8), mask)


def test_gradients_reach_the_attention_parameters():
    mil = GatedAttentionMIL(dim=8, hidden=6)
    pooled, _ = mil(torch.randn(2, 3, 8))
    pooled.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mil.parameters())
