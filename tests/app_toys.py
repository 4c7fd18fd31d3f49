"""Tiny random models with every kind of routing, for the dashboard's tests.

`ToyTextRunner`: words -> 2 blocks of top-2 MoE over 4 experts, a mixture-of-depths block,
per-token exit heads. `ToyImageRunner`: a 32×32 image as a 4×4 grid of patches -> MoE,
EViT pruning (keep 50%), per-image exit heads. Built from `sample_models.layers`, so the
real adapters in `tracers/sample_layers.py` record them.
"""

from __future__ import annotations

import io
import zlib

import torch
from torch import nn

from routeviz.plugins import DatasetSpec, Example, ModelSpec
from routeviz.runs.models import Encoded, ModelRunner
from sample_models import layers

D, E, K, VOCAB = 16, 4, 2, 64


def word_id(word: str) -> int:
    return zlib.crc32(word.encode()) % VOCAB


class ToyTextNet(nn.Module):
    def __init__(self, n_layers: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, D)
        self.moe = nn.ModuleList(layers.MoEFeedForward(D, 2 * D, E, K) for _ in range(n_layers))
        self.depth = nn.ModuleDict({"1": layers.MixtureOfDepthsRouter(D, capacity=0.5)})  # site depth.1
        self.head = nn.Linear(D, VOCAB)
        self.exits = nn.ModuleList(layers.TokenExitHead(i, threshold=0.06, last=i == n_layers - 1)
                                   for i in range(n_layers))

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.bool()
        h = self.embed(input_ids)  # [b, s, d]
        exited = torch.zeros_like(mask)
        for i, block in enumerate(self.moe):
            if i == 1:
                route = self.depth["1"](h, token_mask=mask)
                h = h + block(h).hidden * route.selected[..., None]
            else:
                h = h + block(h).hidden
            out = self.exits[i](self.head(h), exited, token_mask=mask)
            exited = exited | out.exit_now
        return self.head(h)  # [b, s, v]


class ToyTextRunner(ModelRunner):
    name = "toy-text"
    modality = "text"
    routing = ("expert", "keep", "exit")
    datasets = ()
    max_tokens = 64

    def __init__(self, name: str = "toy-text", max_tokens: int = 64):
        self.name = name
        self.max_tokens = max_tokens
        self.module = ToyTextNet().eval()

    def encode(self, items) -> Encoded:
        words = [item.text.split() for item in items]  # whitespace words: "<b>x</b>" stays one
        width = max(1, min(self.max_tokens, max(len(w) for w in words)))
        ids = torch.zeros(len(items), width, dtype=torch.long)
        mask = torch.zeros(len(items), width, dtype=torch.long)
        tokens, tags, meta, notes = [], [], [], []
        for i, (item, ws) in enumerate(zip(items, words)):
            if len(ws) > width:
                notes.append(f"{item.source or 'text'}: truncated to {width} of {len(ws)} tokens")
            ws = ws[:width]
            ids[i, :len(ws)] = torch.tensor([word_id(w) for w in ws], dtype=torch.long)
            mask[i, :len(ws)] = 1
            tokens.append(ws)
            kind = item.tags.get("kind", "code" if "(" in item.text else "prose")
            tags.append({**item.tags, "kind": kind,
                         "token_type": ["word" if w[0].isalnum() else "punct" for w in ws]})
            meta.append({"modality": "text", "source": item.source or item.text[:200],
                         "label": item.label})
        return Encoded({"input_ids": ids, "attention_mask": mask}, tokens, tags, meta, notes)

    @torch.no_grad()
    def predict(self, encoded):
        logits = self.module(**encoded.inputs)
        last = encoded.inputs["attention_mask"].sum(1) - 1
        return [f"next id {int(logits[i, j].argmax())}" for i, j in enumerate(last)]

    def trace_config(self):
        return {**super().trace_config(), "n_layers": 2, "n_experts": E, "top_k": K}


GRID, PATCH = 4, 8  # 4×4 patches of 8×8 pixels: a 32×32 input


class ToyImageNet(nn.Module):
    def __init__(self, n_layers: int = 3):
        super().__init__()
        torch.manual_seed(1)
        self.patch = nn.Linear(3 * PATCH * PATCH, D)
        self.cls = nn.Parameter(torch.randn(1, 1, D))
        self.moe = nn.ModuleList(layers.MoEFeedForward(D, 2 * D, E, K) for _ in range(n_layers))
        self.prune = nn.ModuleDict({"0": layers.EViTPruner(keep_rate=0.5)})  # site prune.0
        self.exits = nn.ModuleList(layers.ImageExitHead(D, 3, i, threshold=0.5,
                                                        last=i == n_layers - 1)
                                   for i in range(n_layers))

    def forward(self, pixels):  # [b, 3, 32, 32]
        b = pixels.shape[0]
        patches = pixels.unfold(2, PATCH, PATCH).unfold(3, PATCH, PATCH)  # [b, 3, g, g, p, p]
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(b, GRID * GRID, -1)
        h = torch.cat([self.cls.expand(b, -1, -1), self.patch(patches)], 1)  # [b, 1+n, d]
        positions = torch.arange(GRID * GRID)[None].expand(b, -1)  # [b, n]
        exited = torch.zeros(b, dtype=torch.bool)
        logits = None
        for i, block in enumerate(self.moe):
            tokens = h[:, 1:]
            h = torch.cat([h[:, :1], tokens + block(tokens, positions).hidden], 1)
            if i == 0:
                attention = h[:, 1:].norm(dim=-1)  # [b, n] stand-in for CLS attention
                pruned = self.prune["0"](h, attention, positions)
                h, positions = pruned.hidden, pruned.positions
            out = self.exits[i](h[:, 0], exited)
            exited = exited | out.exit_now
            logits = out.logits
        return logits


class ToyImageRunner(ModelRunner):
    name = "toy-image"
    modality = "image"
    routing = ("expert", "keep", "exit")
    datasets = ()

    def __init__(self, name: str = "toy-image"):
        self.name = name
        self.module = ToyImageNet().eval()

    def encode(self, items) -> Encoded:
        import numpy as np

        pixels, tokens, meta = [], [], []
        for item in items:
            small = item.image.convert("RGB").resize((GRID * PATCH, GRID * PATCH))
            arr = torch.tensor(np.asarray(small), dtype=torch.float32).permute(2, 0, 1) / 255
            pixels.append(arr)
            buf = io.BytesIO()
            small.save(buf, format="PNG")
            tokens.append([f"r{i // GRID}c{i % GRID}" for i in range(GRID * GRID)])
            meta.append({"modality": "image", "source": item.source, "label": item.label,
                         "image": buf.getvalue(), "grid_h": GRID, "grid_w": GRID,
                         "patch": PATCH})
        tags = [{**item.tags, "region": ["top" if i < GRID * GRID // 2 else "bottom"
                                         for i in range(GRID * GRID)]} for item in items]
        return Encoded({"pixels": torch.stack(pixels)}, tokens, tags, meta)

    @torch.no_grad()
    def predict(self, encoded):
        logits = self.module(encoded.inputs["pixels"])
        return [f"class {int(c)}" for c in logits.argmax(-1)]

    def trace_config(self):
        return {**super().trace_config(), "n_layers": 3, "n_experts": E, "top_k": K}


def load(name: str):
    if name == "toy-image":
        return ToyImageRunner(name)
    return ToyTextRunner(name, max_tokens=5000 if name == "toy-long" else 64)


def toy_dataset(limit=None):
    """Eight tagged texts, half code, half prose."""
    from routeviz.runs.inputs import Item

    texts = ["def f ( x ) : return x + 1", "the cat sat on the mat .",
             "for i in range ( 3 ) : print ( i )", "a model routes every token to experts .",
             "class A : pass", "it was the best of times .", "import os , sys",
             "experts learn what they see ."]
    items = [Item(text=t, source=f"toy-{i}", tags={"kind": "code" if i % 2 == 0 else "prose"})
             for i, t in enumerate(texts)]
    return items[:limit] if limit else items


# As a third-party package declares them (tests.app_support installs them as entry points).
TOY_EXAMPLES = {"toy-text": (Example("a short text", text="the cat sat on the mat ."),),
                "toy-long": (Example("toy word text 2", dataset="toy-words", index=2),)}
TOY_MODELS = tuple(ModelSpec(name, modality, ("expert", "keep", "exit"), datasets,
                             f"{name} (test toy)", load, TOY_EXAMPLES.get(name, ()))
                   for name, modality, datasets in (("toy-text", "text", ("toy-words",)),
                                                    ("toy-long", "text", ("toy-words",)),
                                                    ("toy-image", "image", ())))
TOY_WORDS = DatasetSpec("toy-words", "eight tagged toy texts", toy_dataset)
