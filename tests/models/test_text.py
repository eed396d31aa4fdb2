import pytest
import torch

from cinefm.config import ConfigError
from cinefm.models.text import build_text_encoder, pad_sentences


def test_mean_pooling_ignores_padding_and_cls_pooling_takes_the_first_token(bert_cfg):
    enc = build_text_encoder(**bert_cfg).eval()
    assert enc.out_dim == 32
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    mask = torch.ones_like(ids)
    padded_ids = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    padded_mask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.long)], 1)
    with torch.no_grad():
        a, b = enc(ids, mask), enc(padded_ids, padded_mask)
        hidden = enc.bert(input_ids=ids, attention_mask=mask).last_hidden_state
    assert a.shape == (1, 32)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, hidden.mean(1))
    enc.pooling = "cls"
    with torch.no_grad():
        torch.testing.assert_close(enc(ids, mask), hidden[:, 0])


@pytest.mark.parametrize("embeddings", [False, True])
def test_first_k_layers_are_frozen_and_the_embeddings_only_when_asked(bert_cfg, embeddings):
    """The method freezes the first 6 layers; the embeddings train unless freeze_embeddings (not in the source)."""
    enc = build_text_encoder(**{**bert_cfg, "freeze_layers": 1, "freeze_embeddings": embeddings})
    ids = torch.randint(5, 100, (2, 6))
    enc(ids, torch.ones_like(ids)).sum().backward()
    for name, p in enc.named_parameters():
        frozen = (embeddings and name.startswith("bert.embeddings.")) or name.startswith("bert.encoder.layer.0.")
        assert p.requires_grad is not frozen, name
        assert (p.grad is None) is frozen, name


def test_freezing_more_layers_than_the_bert_has_is_refused(bert_cfg):
    with pytest.raises(ConfigError, match=r"models.text.freeze_layers: 3 is outside 0..2"):
        build_text_encoder(**{**bert_cfg, "freeze_layers": 3})


def test_local_directory_loads_its_weights_offline(bert_dir, bert_cfg):
    path, state = bert_dir
    enc = build_text_encoder(path, **{k: bert_cfg[k] for k in ("layers", "hidden", "heads")}, freeze_layers=2,
                             freeze_embeddings=True)
    ours = enc.bert.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in state.items())
    assert not any(p.requires_grad for p in enc.bert.parameters())


def test_local_directory_must_match_the_configured_sizes(bert_dir):
    path, _ = bert_dir
    with pytest.raises(ConfigError, match=r"models.text: layers=12 but .*config.json has 2"):
        build_text_encoder(path, layers=12, hidden=32, heads=2)


@pytest.mark.parametrize("remove", ["dir", "config.json", "model.safetensors"])
def test_incomplete_bert_directory_says_what_to_place_there(tmp_path, bert_dir, remove):
    import shutil

    src, _ = bert_dir
    dst = tmp_path / "bert"
    if remove != "dir":
        shutil.copytree(src, dst)
        (dst / remove).unlink()
    with pytest.raises(ConfigError) as info:
        build_text_encoder(dst, layers=2, hidden=32, heads=2)
    msg = str(info.value)
    assert "models.text.path" in msg and "PubMedBERT" in msg and "config.json, vocab.txt, model.safetensors" in msg
    if remove != "dir":
        assert remove.split(".")[0] in msg.split("lacks")[1]


def test_pad_sentences_batches_reports_of_unequal_length():
    ids, mask = pad_sentences([[[2, 5, 3]], [[2, 6, 7, 8, 9, 3], [2, 4, 3]]], max_length=4)
    assert ids.shape == mask.shape == (2, 2, 4)
    assert ids[0, 0].tolist() == [2, 5, 3, 0] and mask[0, 0].tolist() == [1, 1, 1, 0]
    assert mask[0, 1].sum() == 0                                   # missing sentence = padding row
    assert ids[1, 0].tolist() == [2, 6, 7, 8]                      # cut at max_length
    with pytest.raises(ValueError, match="report 1"):
        pad_sentences([[[1]], []], max_length=4)


def test_batchnorm_feature_norm_spreads_the_near_constant_pooled_states_of_a_random_bert(bert_cfg):
    torch.manual_seed(0)
    plain = build_text_encoder(**bert_cfg)
    normed = build_text_encoder(**bert_cfg, feature_norm="batchnorm")
    normed.bert.load_state_dict(plain.bert.state_dict())
    plain.eval(), normed.bert.eval()                  # no dropout; the norm stays in training mode
    ids = torch.randint(5, 100, (8, 40))
    mask = torch.ones_like(ids)

    def mean_cosine(x):
        x = torch.nn.functional.normalize(x, dim=-1)
        return float(((x @ x.T).sum() - len(x)) / (len(x) ** 2 - len(x)))

    with torch.no_grad():
        a, b = plain(ids, mask), normed(ids, mask)     # batch statistics
    assert mean_cosine(a) > 0.9                       # every report pools to nearly the same vector
    torch.testing.assert_close(b.mean(0), torch.zeros(32), atol=1e-5, rtol=0)
    assert abs(mean_cosine(b)) < 0.3
    torch.testing.assert_close(b, (a - a.mean(0)) / (a.var(0, unbiased=False) + 1e-5).sqrt(), atol=1e-4, rtol=0)
    normed.eval()                                     # evaluation: running statistics, batch-independent
    with torch.no_grad():
        torch.testing.assert_close(normed(ids[:1], mask[:1]), normed(ids, mask)[:1])
    assert isinstance(plain.norm, torch.nn.Identity)


def test_unknown_feature_norm_is_refused(bert_cfg):
    with pytest.raises(ConfigError, match=r"models.text.feature_norm: 'layer' is not one of none, batchnorm"):
        build_text_encoder(**bert_cfg, feature_norm="layer")
