"""text-moe: a small decoder-only LM of Python code and prose with all three kinds of routing.

- every block's FFN is a top-2 mixture of 8 experts (`SampleTopKRouter`, load-balancing loss);
- some blocks are mixture-of-depths blocks: per example only the top `capacity` share of
  tokens by router score runs the block, the rest take the residual path;
- every block ends in a CALM-style exit head: at inference a token stops at the first layer
  whose prediction (shared output head) is confident enough, and its state is copied upward.

Trained on the stdlib (`sample_models.text_data`) by `text_moe_train.py`; weights, config and
tokenizer live in `sample_models/weights/text-moe/`. `load(name)` returns a ModelRunner.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from routeviz.figures.labels import exit_label
from routeviz.runs.models import Encoded, ModelRunner
from sample_models import TEXT_MOE, layers, routing
from sample_models.text_tags import text_tags

WEIGHTS = Path(__file__).parent / "weights"


@dataclass
class TextMoEConfig:
    vocab_size: int = 2048  # byte-level BPE vocabulary (ids 0, 1: end-of-text, padding)
    context: int = 128  # longest sequence in tokens (learned absolute positions)
    d_model: int = 128  # residual width
    n_heads: int = 4  # attention heads
    n_layers: int = 4  # blocks
    n_experts: int = 8  # experts per MoE FFN
    top_k: int = 2  # experts per token
    expert_hidden: int = 256  # hidden width of one expert
    dense: bool = False  # baseline: one FFN of width top_k * expert_hidden, no MoD, same active params
    mod_layers: list = field(default_factory=lambda: [1, 3])  # mixture-of-depths blocks
    mod_capacity: float = 0.5  # share of each example's tokens an MoD block computes
    exit_threshold: float = 0.9  # CALM confidence (max softmax prob) to exit early
    aux_loss_weight: float = 0.01  # load-balancing loss weight
    exit_loss_weight: float = 0.3  # weight of the intermediate layers' LM losses
    eos_id: int = 0
    pad_id: int = 1

    @classmethod
    def from_json(cls, path: Path) -> TextMoEConfig:
        return cls(**json.loads(Path(path).read_text()))

    def to_json(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


class LMOutput(NamedTuple):
    logits: torch.Tensor  # [b, s, v] the prediction each token used (its exit layer's)
    hidden: list  # per layer [b, s, d] residual stream after the block
    exit_layer: torch.Tensor  # [b, s] last layer computed per token
    aux_loss: torch.Tensor  # scalar: load balancing + MoD predictor BCE


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, key_mask):  # x [b, s, d], key_mask [b, s] bool
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        causal = torch.ones(s, s, dtype=torch.bool, device=x.device).tril()
        allowed = (causal & key_mask[:, None, :]) | torch.eye(s, dtype=torch.bool, device=x.device)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])  # [b, h, s, dh]
        return self.out(y.transpose(1, 2).reshape(b, s, d))


class DenseFFN(nn.Module):
    def __init__(self, d_model: int, d_hidden: int):
        super().__init__()
        self.up, self.down = nn.Linear(d_model, d_hidden), nn.Linear(d_hidden, d_model)

    def forward(self, x, positions=None, token_mask=None):
        return layers.MoEOutput(self.down(F.gelu(self.up(x))), x.new_zeros(()), None, None, None)


class Block(nn.Module):
    """Pre-norm attention + FFN; with `mod_capacity`, only the router's top tokens run it."""

    def __init__(self, cfg: TextMoEConfig, mod_capacity: float | None):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.n_heads)
        self.mlp = (DenseFFN(cfg.d_model, cfg.top_k * cfg.expert_hidden) if cfg.dense else
                    layers.MoEFeedForward(cfg.d_model, cfg.expert_hidden, cfg.n_experts, cfg.top_k))
        self.mod = None if mod_capacity is None else layers.MixtureOfDepthsRouter(cfg.d_model, mod_capacity)

    def delta(self, x, mask, positions):  # the block's update for tokens x [b, s, d]
        h = x + self.attn(self.norm1(x), mask)
        ffn = self.mlp(self.norm2(h), positions, positions >= 0)
        return h + ffn.hidden - x, ffn.aux_loss

    def forward(self, x, mask, active, causal_routing: bool = False):  # -> (x [b, s, d], aux)
        # mask [b, s]: real tokens (attention keys); active [b, s]: tokens not yet exited;
        # causal_routing: MoD picks tokens by its causal predictor (sampling), not top-k
        positions = torch.where(active, torch.arange(x.shape[1], device=x.device), -1)  # [b, s]
        if self.mod is None:
            update, aux = self.delta(x, mask, positions)
            return x + update, aux
        route = self.mod(x, active, positions, use_predictor=causal_routing)
        sub = routing.gather_tokens(x, route.index)  # [b, c, d]
        sub_positions = torch.where(route.slot_valid, route.index, torch.full_like(route.index, -1))
        update, aux = self.delta(sub, route.slot_valid, sub_positions)
        gate = torch.sigmoid(torch.gather(route.scores, 1, route.index))[..., None]  # [b, c, 1]
        out = routing.scatter_add_tokens(x, route.index, update * gate, route.slot_valid)
        return out, aux + layers.predictor_loss(route, active.float())


class TextMoE(nn.Module):
    def __init__(self, cfg: TextMoEConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        mod_layers = set() if cfg.dense else set(cfg.mod_layers)
        self.blocks = nn.ModuleList(Block(cfg, cfg.mod_capacity if i in mod_layers else None)
                                    for i in range(cfg.n_layers))
        self.exits = nn.ModuleList(layers.TokenExitHead(i, cfg.exit_threshold, last=i == cfg.n_layers - 1)
                                   for i in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def head(self, h):  # shared output head, tied to the embedding: [b, s, d] -> [b, s, v]
        return self.norm(h) @ self.embed.weight.T

    def forward(self, input_ids, attention_mask=None, early_exit: bool = True,
                causal_routing: bool = False) -> LMOutput:
        b, s = input_ids.shape
        mask = (torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None
                else attention_mask.bool())
        h = self.embed(input_ids) + self.pos(torch.arange(s, device=input_ids.device))
        exited = torch.zeros_like(mask)
        exit_layer = torch.full((b, s), self.cfg.n_layers - 1, dtype=torch.long, device=h.device)
        final, hidden, aux = None, [], h.new_zeros(())
        for i, block in enumerate(self.blocks):
            new_h, block_aux = block(h, mask, mask & ~exited, causal_routing)
            aux = aux + block_aux
            h = torch.where(exited[..., None], h, new_h) if early_exit else new_h
            hidden.append(h)
            if not early_exit:  # full depth: no exit decisions, one output head at the end
                continue
            logits = self.head(h)  # [b, s, v]
            decision = self.exits[i](logits, exited, mask)
            exit_layer = torch.where(decision.exit_now, i, exit_layer)
            final = logits if final is None else torch.where(decision.exit_now[..., None], logits, final)
            exited = exited | decision.exit_now
        if not early_exit:
            final = self.head(h)
        return LMOutput(final, hidden, exit_layer, aux)


@torch.no_grad()
def generate(model: TextMoE, input_ids, n_new: int) -> torch.Tensor:
    """Greedy sampling: mixture-of-depths routing by the causal predictor (top-k would need
    future tokens), early exit on. input_ids [1, s] -> [1, s + n_new]."""
    ids = input_ids
    for _ in range(n_new):
        window = ids[:, -model.cfg.context:]
        logits = model(window, causal_routing=True).logits[:, -1]  # [1, v]
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    return ids


def lm_loss(logits, input_ids, mask):
    """Mean next-token cross-entropy over real (non-padding) targets."""
    target_mask = mask[:, 1:] & mask[:, :-1]
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), input_ids[:, 1:].flatten(), reduction="none")
    return (loss * target_mask.flatten()).sum() / target_mask.sum().clamp(min=1)


# --- runner -------------------------------------------------------------------------------
def load_weights(directory: Path):
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    cfg = TextMoEConfig.from_json(directory / "config.json")
    model = TextMoE(cfg)
    state = {k: v.float() for k, v in load_file(directory / "model.safetensors").items()}
    model.load_state_dict(state)  # shipped as float16
    model.eval()
    return model, Tokenizer.from_file(str(directory / "tokenizer.json"))


class TextMoERunner(ModelRunner):
    spec = TEXT_MOE

    def __init__(self, name: str, directory: Path):
        self.name = name
        self.module, self.tokenizer = load_weights(directory)
        self.cfg = self.module.cfg
        self.max_tokens = self.cfg.context

    def encode(self, items) -> Encoded:
        from routeviz.errors import RoutevizError

        if any(item.text is None for item in items):
            raise RoutevizError(f"{self.name} is a text model; it cannot take an image")
        encodings = self.tokenizer.encode_batch([item.text for item in items])
        width = max(1, min(self.max_tokens, max(len(e.ids) for e in encodings)))
        ids = torch.full((len(items), width), self.cfg.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        tokens, tags, meta, notes = [], [], [], []
        for i, (item, enc) in enumerate(zip(items, encodings)):
            n = min(len(enc.ids), width)
            if n < len(enc.ids):
                notes.append(f"{item.source or 'text'}: truncated to {n} of {len(enc.ids)} tokens")
            ids[i, :n] = torch.tensor(enc.ids[:n], dtype=torch.long)
            mask[i, :n] = 1
            offsets = enc.offsets[:n]
            tokens.append([item.text[a:b] for a, b in offsets])
            tags.append(text_tags(item, offsets))
            meta.append({"modality": "text", "source": item.source or item.text[:200],
                         "label": item.label, "offsets": offsets})  # tokens.char_start/end
        return Encoded(inputs={"input_ids": ids, "attention_mask": mask}, tokens=tokens,
                       tags=tags, meta=meta, notes=notes)

    @torch.no_grad()
    def predict(self, encoded: Encoded) -> list[str]:
        out = self.module(**encoded.inputs)
        last = encoded.inputs["attention_mask"].sum(1) - 1  # [b]
        rows = torch.arange(len(last))
        next_ids = out.logits[rows, last].argmax(-1)
        exits = out.exit_layer[rows, last]
        return [f"next token: {self.tokenizer.decode([int(t)])!r} "
                f"(exit at {exit_label(int(e), self.cfg.n_layers)})"
                for t, e in zip(next_ids, exits)]

    def trace_config(self) -> dict:
        cfg = self.cfg
        return {**super().trace_config(), "n_layers": cfg.n_layers, "n_experts": cfg.n_experts,
                "top_k": cfg.top_k, "mod_layers": list(cfg.mod_layers),
                "mod_capacity": cfg.mod_capacity, "exit_threshold": cfg.exit_threshold,
                "context": cfg.context}


def load(name: str = "text-moe") -> TextMoERunner:
    return TextMoERunner(name, WEIGHTS / "text-moe")
