import copy

import pytest
import torch
from torch import nn

from cinefm.config import ConfigError
from cinefm.models.clip import CLIPModel
from cinefm.models.heads import (
    StudyModel,
    build_study_model,
    load_pretrained_video,
    set_finetune_mode,
    set_mode,
    set_transfer_mode,
    trainable_parameters,
)
from cinefm.models.text import build_text_encoder
from cinefm.models.video import build_video_encoder


def _study_batch(frames=8, size=64):
    clips = torch.randn(2, 3, 3, frames, size, size)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    return clips, mask


def test_study_model_pools_real_views_and_ignores_padded_clips(mvit_cfg):
    model = build_study_model({"name": "mvit_small", **mvit_cfg}, projection_dim=16, n_outputs=6, mil_hidden=8,
                              layer_norm=True).eval()
    clips, mask = _study_batch()
    with torch.no_grad():
        out = model(clips, mask)
        clips[0, 2] = float("nan")                      # a padded slot's content must not matter
        again = model(clips, mask)
    assert out.logits.shape == (2, 6) and out.attention.shape == (2, 3) and out.views.shape == (2, 3, 16)
    assert out.attention[0, 2] == 0 and torch.equal(out.views[0, 2], torch.zeros(16))
    torch.testing.assert_close(out.attention.sum(1), torch.ones(2))
    torch.testing.assert_close(again.logits, out.logits)
    with pytest.raises(ValueError, match="no real view"):
        model(clips, torch.tensor([[False, False, False], [True, False, False]]))


def test_per_output_attention_pools_each_disease_on_its_own(mvit_cfg):
    torch.manual_seed(0)
    model = build_study_model({"name": "mvit_small", **mvit_cfg}, projection_dim=16, n_outputs=3, mil_hidden=8,
                              layer_norm=True, attention="per_output").eval()
    with torch.no_grad():  # distinct attention vectors, so the diseases weigh the views differently
        for j, mil in enumerate(model.mil):
            mil.w.weight.copy_(torch.randn(1, 8) * (j + 1) * 3)
    clips, mask = _study_batch()
    with torch.no_grad():
        out = model(clips, mask)
        clips[0, 2] = float("nan")
        again = model(clips, mask)
    assert out.logits.shape == (2, 3) and out.attention.shape == (2, 3, 3)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(2, 3))
    assert torch.all(out.attention[0, :, 2] == 0)
    torch.testing.assert_close(again.logits, out.logits)
    assert not torch.allclose(out.attention[:, 0], out.attention[:, 2])
    # output j = head row j applied to the views pooled with disease j's own attention
    with torch.no_grad():
        for j, mil in enumerate(model.mil):
            pooled, att = mil(out.views, mask)
            torch.testing.assert_close(att, out.attention[:, j])
            torch.testing.assert_close(pooled @ model.head.weight[j] + model.head.bias[j], out.logits[:, j])
    # a view order change permutes the attention and leaves the logits alone
    perm = torch.tensor([1, 0, 2])
    with torch.no_grad():
        moved = model(clips[:, perm], mask[:, perm])
    torch.testing.assert_close(moved.logits, out.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(moved.attention, out.attention[..., perm], atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="attention must be one of"):
        build_study_model({"name": "mvit_small", **mvit_cfg}, projection_dim=16, n_outputs=3, mil_hidden=8,
                          attention="per_view")


@pytest.mark.parametrize("attention", ["shared", "per_output"])
def test_view_logits_score_each_view_as_a_study_of_that_view_alone(attention, mvit_cfg):
    torch.manual_seed(0)
    model = build_study_model({"name": "mvit_small", **mvit_cfg}, projection_dim=16, n_outputs=3, mil_hidden=8,
                              layer_norm=True, attention=attention).eval()
    with torch.no_grad():  # a LayerNorm that is not the identity, so leaving it out would show
        for norm in ([m.norm for m in model.mil] if attention == "per_output" else [model.mil.norm]):
            norm.weight.uniform_(0.5, 2.0)
            norm.bias.normal_()
    clips, mask = _study_batch()
    with torch.no_grad():
        out = model(clips, mask)
        view_bkj = model.view_logits(out.views)
        assert view_bkj.shape == (2, 3, 3)
        for b, k in mask.nonzero().tolist():
            alone = model(clips[b:b + 1, k:k + 1])
            torch.testing.assert_close(view_bkj[b, k], alone.logits[0], atol=1e-5, rtol=1e-5)
        # the study's logits are not any one view's: pooling over views matters
        assert not torch.allclose(view_bkj[1, 0], out.logits[1])


@pytest.mark.parametrize("name", ["mvit_small", "r2plus1d_18"])
def test_finetune_step_changes_only_projection_mil_and_head(name, mvit_cfg):
    cfg = {"name": name, **mvit_cfg} if name == "mvit_small" else {"name": name}
    size = 64 if name == "mvit_small" else 32
    model = set_finetune_mode(build_study_model(cfg, projection_dim=16, n_outputs=1, mil_hidden=8))
    model.train()
    assert not model.video.training and model.head.training           # frozen trunk stays in eval
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.AdamW(trainable_parameters(model), lr=1e-2)
    clips, mask = _study_batch(size=size)
    nn.functional.huber_loss(model(clips, mask).logits[:, 0], torch.tensor([0.3, 0.6])).backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    trainable = {k for k in before if k.startswith(("video_proj.", "mil.", "head."))}
    assert changed == trainable                   # every trunk tensor (BN statistics included) untouched


def test_transfer_mode_trains_the_trunk_too(mvit_cfg):
    model = set_mode(build_study_model({"name": "mvit_small", **mvit_cfg}, projection_dim=16, n_outputs=2,
                                       mil_hidden=8), "finetune")
    set_transfer_mode(model).train()
    assert model.video.training and all(p.requires_grad for p in model.parameters())
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.AdamW(trainable_parameters(model), lr=1e-2)
    clips, mask = _study_batch()
    nn.functional.binary_cross_entropy_with_logits(model(clips, mask).logits, torch.ones(2, 2)).backward()
    opt.step()
    after = model.state_dict()
    assert not torch.equal(before["video.blocks.0.attn.qkv.weight"], after["video.blocks.0.attn.qkv.weight"])
    with pytest.raises(ConfigError, match="mode"):
        set_mode(model, "linear_probe")


class _PretrainModule(nn.Module):
    """Stands in for the pre-training LightningModule: the CLIPModel lives at attribute ``model``."""

    def __init__(self, clip: CLIPModel) -> None:
        super().__init__()
        self.model = clip


@pytest.fixture
def clip_model(mvit_cfg, bert_cfg):
    torch.manual_seed(11)
    return CLIPModel(build_video_encoder("mvit_small", **mvit_cfg), build_text_encoder(**bert_cfg), 16)


def _assert_video_path_equal(study: StudyModel, clip: CLIPModel):
    for k, v in clip.video.state_dict().items():
        assert torch.equal(study.video.state_dict()[k], v), k
    for k, v in clip.video_proj.state_dict().items():
        assert torch.equal(study.video_proj.state_dict()[k], v), k


@pytest.mark.parametrize("form", ["lightning", "plain", "compiled"])
def test_contrastive_checkpoint_video_path_loads_into_the_study_model(tmp_path, clip_model, mvit_cfg, form):
    if form == "plain":
        torch.save(clip_model.state_dict(), tmp_path / "c.ckpt")
    else:
        state = _PretrainModule(clip_model).state_dict()
        if form == "compiled":
            state = {k.replace("model.", "model._orig_mod.", 1): v for k, v in state.items()}
        torch.save({"epoch": 3, "global_step": 30, "state_dict": state,
                    "hyper_parameters": {"lr": 4.8e-5, "name": "mvit_small"}}, tmp_path / "c.ckpt")
    torch.manual_seed(99)
    study = build_study_model({"name": "mvit_small", **mvit_cfg}, projection_dim=16, n_outputs=1, mil_hidden=8)
    n = load_pretrained_video(study, tmp_path / "c.ckpt")
    assert n == len(clip_model.video.state_dict()) + 2
    _assert_video_path_equal(study, clip_model)


def test_checkpoint_of_another_projection_size_is_refused(tmp_path, clip_model, mvit_cfg):
    torch.save({"state_dict": _PretrainModule(clip_model).state_dict()}, tmp_path / "c.ckpt")
    study = build_study_model({"name": "mvit_small", **mvit_cfg}, projection_dim=32, n_outputs=1, mil_hidden=8)
    with pytest.raises(ConfigError, match="models.projection_dim"):
        load_pretrained_video(study, tmp_path / "c.ckpt")
    with pytest.raises(ConfigError, match="no 'model.video"):
        torch.save({"state_dict": {"encoder.weight": torch.zeros(1)}}, tmp_path / "other.ckpt")
        load_pretrained_video(study, tmp_path / "other.ckpt")
    with pytest.raises(ConfigError, match="run the pretrain rule"):
        load_pretrained_video(study, tmp_path / "missing.ckpt")


@pytest.mark.parametrize("chunk,recompute", [(2, False), (2, True), (3, True), (1, True)])
def test_chunked_trunk_equals_one_pass_in_outputs_and_gradients(mvit_cfg, chunk, recompute):
    """Clips through the trunk `chunk` at a time (optionally checkpointed): the same logits and the same
    gradient of every parameter as every clip in one pass, to 1e-5, in training mode. (Stochastic depth
    draws one mask per pass, so chunks draw other paths than one pass: off here, and the checkpointed
    recomputation's draws are checked against the plain chunked pass below.)"""
    cfg = {"name": "mvit_small", **mvit_cfg, "stochastic_depth": 0.0}
    one = build_study_model(cfg, projection_dim=16, n_outputs=1, mil_hidden=8)
    chunked = build_study_model(cfg, projection_dim=16, n_outputs=1, mil_hidden=8, trunk_chunk=chunk,
                                trunk_checkpoint=recompute)
    chunked.load_state_dict(one.state_dict())
    clips, mask = _study_batch()
    grads, logits = [], []
    for model in (one, chunked):
        model.train()
        torch.manual_seed(11)  # the same stochastic-depth draws in both (and in the recomputation)
        out = model(clips, mask)
        (out.logits ** 2).sum().backward()
        logits.append(out.logits.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(logits[1], logits[0], atol=1e-5, rtol=1e-5)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5, rtol=1e-5, msg=name)


def test_checkpointed_chunks_recompute_the_same_stochastic_depth_paths(mvit_cfg):
    cfg = {"name": "mvit_small", **mvit_cfg, "stochastic_depth": 0.5}
    plain = build_study_model(cfg, projection_dim=16, n_outputs=1, mil_hidden=8, trunk_chunk=2)
    recomputed = build_study_model(cfg, projection_dim=16, n_outputs=1, mil_hidden=8, trunk_chunk=2,
                                   trunk_checkpoint=True)
    recomputed.load_state_dict(plain.state_dict())
    clips, mask = _study_batch()
    grads = []
    for model in (plain, recomputed):
        torch.manual_seed(4)
        model.train()(clips, mask).logits.sum().backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_trunk_passes_chunks_of_the_configured_size(mvit_cfg):
    model = build_study_model({"name": "mvit_small", **mvit_cfg}, projection_dim=16, n_outputs=1, mil_hidden=8,
                              trunk_chunk=2)
    sizes = []
    model.video.register_forward_hook(lambda mod, args, out: sizes.append(args[0].shape[0]))
    clips, mask = _study_batch()
    with torch.no_grad():
        model(clips, mask)
    assert sizes == [2, 2, 1]  # 5 real clips
    with pytest.raises(ValueError, match="trunk_chunk"):
        build_study_model({"name": "mvit_small", **mvit_cfg}, projection_dim=16, n_outputs=1, mil_hidden=8,
                          trunk_chunk=-1)
