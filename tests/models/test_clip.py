import math

import pytest
import torch

from cinefm.config import PAPER_CONFIG, ConfigError
from cinefm.models.clip import (
    CLIPModel,
    asymmetric_info_nce,
    build_clip_model,
    flood,
    pool_sentences,
)
from cinefm.models.text import build_text_encoder, pad_sentences
from cinefm.models.video import build_video_encoder


def _loss_by_loops(video, text, tau, lam):
    """ConVIRT's formula written out: cosine similarities, per-row log-softmax via logsumexp."""
    n = video.shape[0]
    v = [x / x.norm() for x in video]
    u = [x / x.norm() for x in text]
    s = [[float(v[i] @ u[j]) / tau for j in range(n)] for i in range(n)]
    total = 0.0
    for i in range(n):
        v2u = -(s[i][i] - math.log(sum(math.exp(s[i][j]) for j in range(n))))
        u2v = -(s[i][i] - math.log(sum(math.exp(s[j][i]) for j in range(n))))
        total += lam * v2u + (1 - lam) * u2v
    return total / n


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 0.75, 1.0])
def test_loss_equals_the_formula_re_derived_with_loops(lam):
    torch.manual_seed(5)
    video, text = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    got = asymmetric_info_nce(video, text, temperature=0.2, weight=lam)
    assert got.item() == pytest.approx(_loss_by_loops(video, text, 0.2, lam), rel=1e-10)


def test_paper_lambda_is_convirts_asymmetric_weighting():
    """paper.yaml's lambda is ConVIRT's 0.75: three parts video->text, one part text->video (not CLIP's 0.5)."""
    import yaml

    lam = yaml.safe_load(PAPER_CONFIG.read_text())["pretrain"]["loss_weight"]
    assert lam == 0.75
    torch.manual_seed(3)
    video, text = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    v2t = asymmetric_info_nce(video, text, 0.1, weight=1.0)
    t2v = asymmetric_info_nce(video, text, 0.1, weight=0.0)
    got = asymmetric_info_nce(video, text, 0.1, weight=lam)
    assert got.item() == pytest.approx(0.75 * v2t.item() + 0.25 * t2v.item(), rel=1e-12)
    assert got.item() != pytest.approx(asymmetric_info_nce(video, text, 0.1, weight=0.5).item(), rel=1e-6)


def test_lambda_one_and_zero_are_the_one_sided_losses():
    video, text = torch.randn(5, 3), torch.randn(5, 3)
    v2t = asymmetric_info_nce(video, text, 0.1, weight=1.0)
    t2v = asymmetric_info_nce(video, text, 0.1, weight=0.0)
    assert v2t.item() != pytest.approx(t2v.item())
    torch.testing.assert_close(asymmetric_info_nce(text, video, 0.1, weight=1.0), t2v)
    torch.testing.assert_close(asymmetric_info_nce(video, text, 0.1, weight=0.25), 0.25 * v2t + 0.75 * t2v)


def test_loss_normalises_its_inputs_and_rejects_bad_shapes():
    video, text = torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(asymmetric_info_nce(3 * video, 0.5 * text, 0.1), asymmetric_info_nce(video, text, 0.1))
    with pytest.raises(ValueError, match="both be"):
        asymmetric_info_nce(video, text[:3], 0.1)


def test_flood_keeps_the_loss_above_the_level_and_reverses_the_gradient_below():
    above = torch.tensor(0.3, requires_grad=True)
    below = torch.tensor(0.01, requires_grad=True)
    f_above, f_below = flood(above, 0.05), flood(below, 0.05)
    assert f_above.item() == pytest.approx(0.3)
    assert f_below.item() == pytest.approx(0.09)          # |0.01 - 0.05| + 0.05
    f_above.backward()
    f_below.backward()
    assert above.grad.item() == 1.0 and below.grad.item() == -1.0


@pytest.fixture
def clip(mvit_cfg, bert_cfg):
    video = build_video_encoder("mvit_small", **mvit_cfg)
    text = build_text_encoder(**{**bert_cfg, "freeze_layers": 1})
    return CLIPModel(video, text, projection_dim=16, temperature=0.1, learnable_temperature=True)


def _batch(b=3):
    clips = torch.randn(b, 3, 8, 64, 64)
    reports = [[[2, 10 + i, 11, 3], [2, 20, 21, 22, 3]] for i in range(b - 1)] + [[[2, 30, 3]]]
    ids, mask = pad_sentences(reports, max_length=8)
    return clips, ids, mask


def test_clip_model_gives_unit_embeddings_and_trains_every_unfrozen_parameter(clip):
    clips, ids, mask = _batch()
    out = clip(clips, ids, mask)
    assert out.video.shape == out.text.shape == (3, 16)
    torch.testing.assert_close(out.video.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(out.text.norm(dim=1), torch.ones(3))
    loss = flood(asymmetric_info_nce(out.video, out.text, out.temperature, 0.5), 0.05)
    loss.backward()
    for name, p in clip.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
    frozen = {n for n, p in clip.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("text.bert.embeddings.", "text.bert.encoder.layer.0.")) for n in frozen)
    assert clip.log_temperature.grad is not None


def test_sentences_are_encoded_separately_and_averaged(clip):
    clip.eval()
    _, ids, mask = _batch()
    with torch.no_grad():
        got = clip.encode_text(ids, mask)
        expect = []
        for b in range(3):
            real = [s for s in range(ids.shape[1]) if mask[b, s].any()]
            sent = torch.stack([clip.text(ids[b, s][mask[b, s].bool()][None], mask[b, s][mask[b, s].bool()][None])[0]
                                for s in real])
            expect.append(torch.nn.functional.normalize(clip.text_proj(sent.mean(0)), dim=0))
    torch.testing.assert_close(got, torch.stack(expect), atol=1e-5, rtol=1e-4)
    no_words = mask.clone()
    no_words[1] = 0
    with pytest.raises(ValueError, match=r"reports \[1\] of the batch have no sentence"):
        pool_sentences(clip.text, ids, no_words)


def test_temperature_is_log_parameterised_and_clamped(mvit_cfg, bert_cfg):
    video = build_video_encoder("mvit_small", **mvit_cfg)
    fixed = CLIPModel(video, build_text_encoder(**bert_cfg), 8, temperature=0.07)
    assert "log_temperature" in fixed.state_dict() and "log_temperature" not in dict(fixed.named_parameters())
    assert fixed.temperature.item() == pytest.approx(0.07)
    learn = CLIPModel(video, build_text_encoder(**bert_cfg), 8, temperature=0.07, learnable_temperature=True)
    with torch.no_grad():
        learn.log_temperature.fill_(math.log(1e-5))
    assert learn.temperature.item() == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="pretrain.temperature"):
        CLIPModel(video, build_text_encoder(**bert_cfg), 8, temperature=5.0)


def test_build_clip_model_from_the_demo_config():
    from cinefm.config import DEFAULT_CONFIG, load_config

    cfg = load_config(DEFAULT_CONFIG)
    model = build_clip_model(cfg["models"], vocab_size=cfg["text"]["vocab_size"],
                             temperature=cfg["pretrain"]["temperature"])
    v = cfg["models"]["video"]
    out = model(torch.randn(2, 3, v["frames"], v["size"], v["size"]), torch.randint(5, 50, (2, 7)),
                torch.ones(2, 7, dtype=torch.long))
    assert out.video.shape == (2, cfg["models"]["projection_dim"])
