"""Train one DAE-Syn routing strategy: `python -m sample_models.train dae-syn-top-k`.

Same data, steps, batch size, optimiser and seed for every strategy, so their final losses
compare as in the paper's Table 1. One CPU thread; a few minutes per strategy. Writes
`model.safetensors`, `config.json`, `metrics.json` (final L2 on the whole dataset) and
`train_log.csv` (the loss every LOG_EVERY steps) into the model's weights folder.

With `probe_store`, `routeviz.probe` traces PROBE_IMAGES fixed images (a seeded sample of
the 4096, with their attribute tags; the pixels are left out of the store to keep it small)
before training, every `probe_every` steps and at the last step, into that store as the
series `dae-syn-<strategy>`: how the routers converge on the attributes. Probing forks the
RNG and runs in eval mode, so the weights are the same with or without it.

With `supervise=F` (`--supervise F`, paper §4.4) a fixed, seeded F share of the 4096
examples carries its tags: for those in a batch, each router also gets the cross entropy of
its routing distribution against its attribute; the others stay unlabelled. The model is
saved as `dae-syn-<strategy>-sup<100·F>`. `init_from` continues training from saved
weights (with `supervise=0`: the "supervision removed, training continued" check).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from sample_models.dae_syn import (
    STRATEGIES,
    DAEConfig,
    DiscreteAutoencoder,
    per_image_sse,
    save,
    weights_dir,
)


@dataclass
class TrainConfig:
    steps: int = 3000  # optimiser steps (same for every strategy)
    batch_size: int = 64  # images per step, drawn with replacement from the 4096
    lr: float = 2e-3  # Adam learning rate
    tau_start: float = 2.0  # ST-Gumbel temperature at step 0 ...
    tau_end: float = 0.2  # ... annealed exponentially to this at the last step
    reward_scale: float = 100.0  # REINFORCE reward r = -reward_scale * per-image MSE
    policy_weight: float = 1.0  # alpha (eq. 2)
    entropy_weight: float = 0.01  # beta (eq. 2)
    value_weight: float = 1.0  # gamma (eq. 2)
    huber_delta: float = 1.0  # delta of the value loss (eq. 1)
    tag_router_weight: float = 1.0  # tag strategy: side loss teaching routers the tags
    supervise: float = 0.0  # share of the examples whose tags supervise the routers (§4.4)
    supervision_weight: float = 1.0  # weight of that cross entropy, per router


LOG_EVERY = 50
PROBE_IMAGES = 512  # images in the probe set


def load_training_data():
    """All 4096 images as float [4096, 3, 32, 32] in [0, 1] and attribute ids [4096, 4]."""
    from sample_models.dae_syn_data import dae_syn_arrays

    pixels, indices = dae_syn_arrays()
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    return images.contiguous(), torch.from_numpy(indices)


def temperature(step: int, cfg: TrainConfig) -> float:
    frac = step / max(1, cfg.steps - 1)
    return cfg.tau_start * (cfg.tau_end / cfg.tau_start) ** frac


def supervised_name(name: str, supervise: float | None) -> tuple[str, str, float]:
    """(strategy, model name, supervised share) from `dae-syn-<strategy>[-sup<P>]` and an
    optional `--supervise F` (which names the model `-sup<100·F>`)."""
    import re

    base, percent = re.fullmatch(r"(.*?)(?:-sup(\d+))?", name).groups()
    share = float(supervise) if supervise is not None else int(percent or 0) / 100
    if not 0 <= share <= 1:
        raise ValueError(f"--supervise takes a share of the examples in [0, 1], not {share}")
    strategy = base.removeprefix("dae-syn-")
    label = f"{share * 100:g}".replace(".", "p")
    return strategy, base if share == 0 else f"{base}-sup{label}", share


def supervised_mask(n_examples: int, share: float, seed: int) -> torch.Tensor:
    """[n] True for the fixed, seeded `share` of the examples whose tags are given."""
    mask = torch.zeros(n_examples, dtype=torch.bool)
    order = torch.randperm(n_examples, generator=torch.Generator().manual_seed(seed + 7919))
    mask[order[:round(share * n_examples)]] = True
    return mask


def step_loss(model: DiscreteAutoencoder, images, tag_ids, cfg: TrainConfig, tau: float,
              supervised=None):
    """The strategy's training loss for one batch, and the reconstruction MSE to log;
    `supervised` [b] marks the examples whose tags supervise the routers."""
    out = model(images, tag_ids, tau=tau)
    per_image = ((out.reconstruction - images) ** 2).flatten(1).mean(dim=1)  # [b]
    loss = per_image.mean()
    strategy = model.config.strategy
    if strategy == "reinforce":
        reward = -cfg.reward_scale * per_image.detach()  # [b]
        baseline = model.value(out.features)[:, 0]  # [b]
        advantage = (reward - baseline).detach()
        for decision in out.decisions:
            log_prob = torch.log(decision.weight.clamp_min(1e-9))  # [b] log P(v)_i, i sampled
            entropy = -(decision.probs * torch.log(decision.probs.clamp_min(1e-9))).sum(-1)
            loss = loss + (-cfg.policy_weight * log_prob * advantage
                           - cfg.entropy_weight * entropy).mean()
        loss = loss + cfg.value_weight * F.huber_loss(baseline, reward, delta=cfg.huber_delta)
    if strategy == "tag":  # routing comes from the tags; teach routers to predict them too
        for i, decision in enumerate(out.decisions):
            log_probs = torch.log(decision.probs.clamp_min(1e-9))
            loss = loss + cfg.tag_router_weight * F.nll_loss(log_probs, tag_ids[:, i])
    if supervised is not None and bool(supervised.any()):  # §4.4: cross entropy to the tag
        for i, decision in enumerate(out.decisions):
            log_probs = torch.log(decision.probs[supervised].clamp_min(1e-9))  # [s, e]
            loss = loss + cfg.supervision_weight * F.nll_loss(log_probs, tag_ids[supervised, i])
    return loss, float(per_image.detach().mean())


@torch.no_grad()
def evaluate(model: DiscreteAutoencoder, images, tag_ids, batch_size: int = 512) -> dict:
    """Final loss on the whole dataset in eval mode (deterministic routing)."""
    model.eval()
    sse = torch.cat([per_image_sse(model(images[i:i + batch_size],
                                         tag_ids[i:i + batch_size]).reconstruction,
                                   images[i:i + batch_size])
                     for i in range(0, len(images), batch_size)])
    model.train()
    n_pixels = images[0].numel()
    return {"l2_per_image": float(sse.mean()), "mse_per_pixel": float(sse.mean() / n_pixels)}


def probe_set(runner, n: int = PROBE_IMAGES, seed: int = 0) -> list:
    """`n` DAE-Syn images drawn without replacement by `seed`, encoded by `runner` in
    batches of 128, with the image bytes dropped from the examples' meta."""
    from sample_models.dae_syn_data import dae_syn_dataset

    items = dae_syn_dataset()
    chosen = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))[:n]
    items = [items[i] for i in sorted(chosen.tolist())]
    batches = [runner.encode(items[i:i + 128]) for i in range(0, len(items), 128)]
    for encoded in batches:
        encoded.meta = [{k: v for k, v in m.items() if k != "image"} for m in encoded.meta]
    return batches


def train(name: str, out_dir=None, steps=None, seed: int = 0, *, probe_store=None,
          probe_every: int | None = None, supervise: float | None = None,
          init_from=None) -> dict:
    """Train `dae-syn-<strategy>` (or `-sup<P>`); write weights and metrics to out_dir
    (default: shipped). probe_store: trace the probe set there as the series `name` at
    step 0, every `probe_every` steps (default: steps / 20) and at the last step.
    supervise: share of examples whose tags supervise the routers; init_from: a weights
    folder to continue from."""
    from tqdm import tqdm

    strategy, name, share = supervised_name(name, supervise)
    if strategy not in STRATEGIES:
        from routeviz.errors import choose

        choose("DAE-Syn model", name, [f"dae-syn-{s}" for s in STRATEGIES])
    torch.set_num_threads(1)
    cfg = TrainConfig(supervise=share) if steps is None else TrainConfig(steps=int(steps),
                                                                          supervise=share)
    out_dir = Path(out_dir) if out_dir is not None else weights_dir(name)
    images, tag_ids = load_training_data()
    supervised = supervised_mask(len(images), share, seed) if share > 0 else None
    torch.manual_seed(seed)
    model = DiscreteAutoencoder(DAEConfig.for_strategy(strategy, supervise=share))
    if init_from is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(Path(init_from) / "model.safetensors")))
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batches = torch.Generator().manual_seed(seed)
    probe = _prober(name, model, probe_store, probe_every or max(1, cfg.steps // 20), cfg.steps)
    log, start = [], time.perf_counter()
    bar = tqdm(range(cfg.steps), desc=name, unit="step")
    probe(0)
    for step in bar:
        index = torch.randint(0, len(images), (cfg.batch_size,), generator=batches)
        loss, mse = step_loss(model, images[index], tag_ids[index], cfg, temperature(step, cfg),
                              None if supervised is None else supervised[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        probe(step + 1)
        if step % LOG_EVERY == 0 or step == cfg.steps - 1:
            log.append((step, float(loss.detach()), mse))
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", mse=f"{mse:.4f}")
    seconds = time.perf_counter() - start
    final = evaluate(model, images, tag_ids)
    save(model, out_dir)
    metrics = {"model": name, "strategy": strategy, "seed": seed, **asdict(cfg),
               "init_from": None if init_from is None else Path(init_from).name,
               **final, "train_seconds": round(seconds, 1),
               "n_parameters": sum(p.numel() for p in model.parameters()),
               "loss": "l2_per_image = sum of squared pixel errors per 32x32x3 image, "
                       "pixels in [0, 1], mean over all 4096 images, eval-mode routing"}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out_dir / "train_log.csv").write_text(
        "step,loss,mse\n" + "".join(f"{s},{l:.6g},{m:.6g}\n" for s, l, m in log))
    print(f"{name}: final L2 per image {final['l2_per_image']:.3f} "
          f"(MSE per pixel {final['mse_per_pixel']:.5f}) in {seconds:.0f}s")
    if not math.isfinite(final["l2_per_image"]):
        raise RuntimeError(f"{name}: training diverged")
    return metrics


def _prober(name: str, model, store, every: int, steps: int):
    """probe(step): trace the probe set at `step` if it is due (a no-op without a store)."""
    if store is None:
        return lambda step: None
    import routeviz
    from sample_models import training
    from sample_models.dae_syn import DAESynRunner

    runner = DAESynRunner(name, model)
    batches = probe_set(runner)
    training.start_series(store, name)

    def probe(step: int) -> None:
        routeviz.probe(runner, batches, store, name, every=1 if step == steps else every,
                       step=step, config={"steps": steps}, weight_dtype="float16")
    return probe
