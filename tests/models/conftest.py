"""Shared small models and weight files for tests/models (built once per session)."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from transformers import BertConfig, BertModel

# CPU-small encoder sections, as config/config.yaml would give them.
MVIT_SMALL = {"frames": 8, "size": 64, "mvit_small": {"dims": [16, 32], "heads": [1, 2], "depths": [1, 2],
                                                      "kv_stride": 4}}
TINY_BERT = {"layers": 2, "hidden": 32, "heads": 2, "vocab_size": 100}


@pytest.fixture
def mvit_cfg() -> dict:
    """``models.video`` minus ``name`` for a 3-block MViT on 8x64x64 clips (out_dim 32)."""
    return copy.deepcopy(MVIT_SMALL)


@pytest.fixture
def bert_cfg() -> dict:
    """Keyword arguments of ``build_text_encoder`` for a 2-layer, 32-wide random BERT."""
    return dict(TINY_BERT)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def r2plus1d_checkpoint(tmp_path_factory):
    """A torchvision-format R(2+1)D-18 checkpoint (with its 400-class ``fc``) at
    ``<root>/hub/checkpoints/r2plus1d_18-91a641e6.pth``; returns (root, full state dict)."""
    root = tmp_path_factory.mktemp("torch_home")
    torch.manual_seed(123)
    ref = torchvision.models.video.r2plus1d_18(weights=None)
    state = ref.state_dict()
    path = root / "hub" / "checkpoints" / "r2plus1d_18-91a641e6.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return root, state


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory):
    """A tiny random BERT saved like a hub model directory (config.json, vocab.txt, model.safetensors)."""
    path = tmp_path_factory.mktemp("bert")
    torch.manual_seed(7)
    cfg = BertConfig(vocab_size=TINY_BERT["vocab_size"], hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64)
    model = BertModel(cfg, add_pooling_layer=False)
    model.save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                              + [f"w{i}" for i in range(95)]) + "\n")
    return path, model.state_dict()
