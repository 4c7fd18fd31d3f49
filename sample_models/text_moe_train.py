"""Train text-moe from a fixed seed: `python -m sample_models.train text-moe [--steps N]`.

Steps: train a byte-level BPE tokenizer on the training split of the stdlib corpus, train
the MoE LM on random 128-token windows (code and prose mixed), train a dense baseline of the
same active parameter count for the same steps, and evaluate held-out perplexity of both
against a unigram model. Writes config.json, model.safetensors, tokenizer.json,
metrics.json and train_log.txt into the output folder. One CPU thread throughout.

Every EVAL_EVERY steps the held-out perplexity of a fixed subset is logged (the training
curve in metrics.json). With `probe_store`, `routeviz.probe` traces PROBE_EXAMPLES held-out
stdlib chunks (PROBE_TOKENS tokens each) before training and every `probe_every` steps into
that store as the series "text-moe"; probing forks the RNG, so the weights are the same
with or without it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

import routeviz
from sample_models import training
from sample_models.text_data import stdlib_chunks, stdlib_dataset
from sample_models.text_moe import WEIGHTS, TextMoE, TextMoEConfig, TextMoERunner, lm_loss

STEPS = 2400
BATCH = 16
LR = 3e-3
PROSE_SHARE = 0.3  # share of training windows drawn from prose
SPECIAL = ["<|endoftext|>", "<|pad|>"]
EXIT_LOSS_POSITIONS = 32  # positions per row that train each intermediate exit
EVAL_EVERY = 200  # steps between held-out perplexity checks (the training curve)
EVAL_WINDOWS = 32  # held-out windows per kind in those checks
PROBE_EXAMPLES, PROBE_TOKENS = 16, 64  # the probe set: held-out chunks, tokens each
SERIES = "text-moe"


def train_tokenizer(texts, vocab_size: int):
    os.environ.setdefault("RAYON_RS_NUM_CPUS", "1")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def token_stream(tokenizer, texts, eos_id: int) -> torch.Tensor:
    """All texts encoded and joined with end-of-text: [n_tokens]."""
    ids = []
    for enc in tokenizer.encode_batch(list(texts)):
        ids.extend(enc.ids)
        ids.append(eos_id)
    return torch.tensor(ids, dtype=torch.long)


def corpus(split: str, limit: int | None):
    """{'code': [texts], 'prose': [texts]}: whole modules/topics re-joined from chunks."""
    items = stdlib_chunks(split, max_chars=100_000)
    if limit is not None:
        items = items[:limit]
    by_kind = {"code": [], "prose": []}
    for item in items:
        by_kind[item.tags["kind"]].append(item.text)
    return by_kind


def sample_windows(streams, batch: int, context: int, gen) -> torch.Tensor:
    """[batch, context] random windows, each from prose with probability PROSE_SHARE."""
    rows = []
    for _ in range(batch):
        kind = "prose" if torch.rand((), generator=gen) < PROSE_SHARE else "code"
        stream = streams[kind]
        start = int(torch.randint(0, len(stream) - context, (), generator=gen))
        rows.append(stream[start:start + context])
    return torch.stack(rows)


def eval_windows(stream, context: int, limit: int) -> torch.Tensor:
    n = min(limit, (len(stream) - 1) // context)
    return stream[:n * context].view(n, context)


def sampled_lm_loss(model: TextMoE, hidden, ids, gen, n: int = EXIT_LOSS_POSITIONS):
    """Next-token loss of an intermediate layer at `n` random positions per row (the exit
    heads share the output head; sampling positions keeps its cost down)."""
    b, s, _ = hidden.shape
    pos = torch.randint(0, s - 1, (b, n), generator=gen)  # [b, n]
    h = torch.gather(hidden, 1, pos[..., None].expand(-1, -1, hidden.shape[-1]))
    target = torch.gather(ids, 1, pos + 1)
    return F.cross_entropy(model.head(h).flatten(0, 1), target.flatten())


class InTraining(TextMoERunner):
    """The runner around a model being trained: encodes and predicts as the shipped one."""

    def __init__(self, model: TextMoE, tokenizer, max_tokens: int):
        self.name, self.module, self.tokenizer = "text-moe", model, tokenizer
        self.cfg, self.max_tokens = model.cfg, max_tokens


def fit(cfg: TextMoEConfig, streams, steps: int, seed: int, log, desc: str,
        curve_windows=None, curve=None, probe=None) -> TextMoE:
    """Train from `seed`. curve_windows: held-out windows whose perplexity is logged (and
    appended to the list `curve` as [step, perplexity]) every EVAL_EVERY steps;
    probe: callable(model, step) after each step and at step 0."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = TextMoE(cfg)
    if probe is not None:
        probe(model, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, steps // 20)
    sched = training.warmup_cosine(opt, warmup, steps)
    model.train()
    bar = tqdm(range(steps), desc=desc, mininterval=2.0)
    for step in bar:
        ids = sample_windows(streams, BATCH, cfg.context, gen)
        out = model(ids, early_exit=False)
        mask = torch.ones_like(ids, dtype=torch.bool)
        final = lm_loss(out.logits, ids, mask)
        inter = sum(sampled_lm_loss(model, h, ids, gen) for h in out.hidden[:-1]) / max(1, cfg.n_layers - 1)
        loss = final + cfg.exit_loss_weight * inter + cfg.aux_loss_weight * out.aux_loss
        training.step(model, opt, sched, loss)
        if step % 25 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{final.item():.3f}")
            log(json.dumps({"model": desc, "step": step, "lm_loss": round(final.item(), 4),
                            "total_loss": round(loss.item(), 4)}))
        if curve_windows is not None and ((step + 1) % EVAL_EVERY == 0 or step == steps - 1):
            model.eval()
            ppl = perplexity(model, curve_windows, early_exit=False)["perplexity"]
            model.train()
            log(json.dumps({"model": desc, "step": step + 1, "heldout_perplexity": round(ppl, 3)}))
            if curve is not None:
                curve.append([step + 1, round(ppl, 3)])
        if probe is not None:
            probe(model, step + 1)
    model.eval()
    return model


@torch.no_grad()
def perplexity(model: TextMoE, windows: torch.Tensor, early_exit: bool,
               causal_routing: bool = False) -> dict:
    """Held-out perplexity (full depth or with early exits), mean exit layer and the share of
    tokens exiting at each layer."""
    nll, count = 0.0, 0
    exits = torch.zeros(model.cfg.n_layers, dtype=torch.long)  # tokens per exit layer
    for batch in windows.split(32):
        out = model(batch, early_exit=early_exit, causal_routing=causal_routing)
        mask = torch.ones_like(batch, dtype=torch.bool)
        n = batch.shape[0] * (batch.shape[1] - 1)
        nll += lm_loss(out.logits, batch, mask).item() * n
        count += n
        exits += torch.bincount(out.exit_layer[:, :-1].reshape(-1), minlength=model.cfg.n_layers)
    mean_exit = float((exits * torch.arange(len(exits))).sum()) / count
    return {"perplexity": math.exp(nll / count), "mean_exit_layer": mean_exit,
            "exit_share": [round(int(e) / count, 4) for e in exits]}


def calibrate_threshold(model: TextMoE, windows: torch.Tensor, tolerance: float = 0.03) -> float:
    """The lowest exit threshold whose early-exit perplexity stays within `tolerance` of
    full depth (CALM calibrates its threshold against a quality bound the same way)."""
    full = perplexity(model, windows, early_exit=False)["perplexity"]
    chosen = 0.99
    for threshold in (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2):
        for head in model.exits:
            head.threshold = threshold
        if perplexity(model, windows, early_exit=True)["perplexity"] > full * (1 + tolerance):
            break
        chosen = threshold
    for head in model.exits:
        head.threshold = chosen
    return chosen


def unigram_perplexity(train_ids: torch.Tensor, windows: torch.Tensor, vocab: int) -> float:
    counts = torch.bincount(train_ids, minlength=vocab).double() + 1.0  # add-one smoothing
    logp = (counts / counts.sum()).log()
    targets = windows[:, 1:].reshape(-1)
    return math.exp(-logp[targets].mean().item())


@torch.no_grad()
def predictor_agreement(model: TextMoE, windows: torch.Tensor) -> dict:
    """Per MoD block, how often the causal predictor agrees with top-k selection."""
    routers = {i: b.mod for i, b in enumerate(model.blocks) if b.mod is not None}
    agree = {i: [0, 0] for i in routers}

    def counter(layer):
        def hook(module, inputs, route):
            agree[layer][0] += int(((route.predictor_logits > 0) == route.selected).sum())
            agree[layer][1] += route.selected.numel()
        return hook

    hooks = [r.register_forward_hook(counter(i)) for i, r in routers.items()]
    try:
        for batch in windows.split(32):
            model(batch, early_exit=False)
    finally:
        for h in hooks:
            h.remove()
    return {str(i): a / max(n, 1) for i, (a, n) in agree.items()}


@torch.no_grad()
def expert_use(model: TextMoE, windows: torch.Tensor) -> list[list[int]]:
    """Per MoE layer, how many held-out tokens chose each expert (any rank)."""
    routers = [block.mlp.router for block in model.blocks if hasattr(block.mlp, "router")]
    use = [torch.zeros(model.cfg.n_experts, dtype=torch.long) for _ in routers]

    def counter(counts):
        def hook(module, inputs, output):
            counts.add_(torch.bincount(output[2].reshape(-1), minlength=module.n_experts))
        return hook

    hooks = [r.register_forward_hook(counter(c)) for r, c in zip(routers, use)]
    try:
        for batch in windows.split(32):
            model(batch)
    finally:
        for h in hooks:
            h.remove()
    return [u.tolist() for u in use]


@torch.no_grad()
def to_shipped_precision(model) -> None:
    """Round every weight to float16 (as shipped), so metrics describe the shipped model."""
    for tensor in model.state_dict().values():
        tensor.copy_(tensor.half().float())


def finalize(model: TextMoE, held: dict, streams: dict, out: Path, log) -> dict:
    """Round to float16, calibrate the exit threshold, save, and measure the MoE model."""
    from safetensors.torch import save_file

    cfg = model.cfg
    to_shipped_precision(model)
    cfg.exit_threshold = calibrate_threshold(model, torch.cat([held["code"][:50], held["prose"][:50]]))
    log(json.dumps({"exit_threshold": cfg.exit_threshold}))
    cfg.to_json(out / "config.json")
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()},
              out / "model.safetensors")
    all_held = torch.cat([held["code"], held["prose"]])
    train_ids = torch.cat([streams["code"], streams["prose"]])
    return {"context": cfg.context, "params": sum(p.numel() for p in model.parameters()),
            "exit_threshold": cfg.exit_threshold,
            "heldout_windows": {k: len(v) for k, v in held.items()},
            "unigram_perplexity": unigram_perplexity(train_ids, all_held, cfg.vocab_size),
            "moe_full_depth": perplexity(model, all_held, early_exit=False),
            "moe_early_exit": perplexity(model, all_held, early_exit=True),
            "moe_by_kind": {k: perplexity(model, v, early_exit=False)["perplexity"]
                            for k, v in held.items()},
            "moe_causal_routing": perplexity(model, all_held, early_exit=True, causal_routing=True),
            "mod_predictor_agreement": predictor_agreement(model, all_held),
            "expert_use_heldout": expert_use(model, all_held)}


def train(name: str = "text-moe", out_dir=None, steps=None, seed: int = 0, *,
          corpus_limit: int | None = None, baseline: bool = True, n_eval: int = 200,
          probe_store=None, probe_every: int | None = None):
    """Train and save text-moe into `out_dir` (default: the shipped weights folder).

    corpus_limit: use only the first N modules/topics per split (for quick tests);
    baseline: also train the dense baseline; n_eval: held-out windows per kind;
    probe_store: trace the probe set into this store as the series "text-moe" at step 0,
    every `probe_every` steps (default: steps / 20) and at the last step.
    """
    torch.set_num_threads(1)
    out = Path(out_dir) if out_dir else WEIGHTS / "text-moe"
    out.mkdir(parents=True, exist_ok=True)
    steps = STEPS if steps is None else steps
    log_file = (out / "train_log.txt").open("w")

    def log(line):
        log_file.write(line + "\n")
        log_file.flush()

    cfg = TextMoEConfig()
    train_texts, eval_texts = corpus("train", corpus_limit), corpus("eval", corpus_limit)
    tokenizer = train_tokenizer(train_texts["code"] + train_texts["prose"], cfg.vocab_size)
    cfg = replace(cfg, vocab_size=tokenizer.get_vocab_size())
    tokenizer.save(str(out / "tokenizer.json"))
    streams = {k: token_stream(tokenizer, v, cfg.eos_id) for k, v in train_texts.items()}
    held = {k: eval_windows(token_stream(tokenizer, v, cfg.eos_id), cfg.context, n_eval)
            for k, v in eval_texts.items()}
    probe = None
    if probe_store is not None:
        items = stdlib_dataset(PROBE_EXAMPLES)
        every = probe_every or max(1, steps // 20)
        training.start_series(probe_store, SERIES)

        def probe(model, step):
            routeviz.probe(InTraining(model, tokenizer, PROBE_TOKENS), items, probe_store, SERIES,
                           every=1 if step == steps else every, step=step,
                           config={"steps": steps, "seed": seed}, weight_dtype="float16")
    curve = []
    curve_windows = torch.cat([held["code"][-EVAL_WINDOWS:], held["prose"][-EVAL_WINDOWS:]])
    model = fit(cfg, streams, steps, seed, log, "text-moe", curve_windows, curve, probe)
    metrics = {"steps": steps, "seed": seed, "batch": BATCH,
               **finalize(model, held, streams, out, log),
               "heldout_curve": {"windows": len(curve_windows), "points": curve}}
    if baseline:
        dense_cfg = replace(cfg, dense=True)
        dense = fit(dense_cfg, streams, steps, seed, log, "dense-baseline")
        metrics["dense_params"] = sum(p.numel() for p in dense.parameters())
        metrics["dense_full_depth"] = perplexity(dense, torch.cat([held["code"], held["prose"]]),
                                                 early_exit=False)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log_file.close()
    return metrics
