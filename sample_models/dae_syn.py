"""The DAE-Syn discrete autoencoder (suboptimal-routing paper §3) and its routing strategies (§2).

A conv encoder maps a 32x32 image to a feature vector v; four parallel routers (batch norm ->
linear -> softmax) each choose one of 8 subnetworks, a single embedding vector each; the sum
of the four chosen vectors is decoded by a transposed-conv net; the loss is L2 reconstruction.

Strategies (how router i picks its subnetwork):
- tag: the example's i-th attribute (letter, location, fg, bg) — the oracle. The router is
  still trained, on the side, to predict that attribute from v; an image without tags
  (an upload) is routed by that prediction instead.
- hash: a fixed hash of the image's pixels, different per router.
- monolithic: one subnetwork per block (always expert 0).
- top-k: k=1, argmax of P(v), output scaled by its probability (Shazeer/Switch).
- st-gumbel: straight-through Gumbel-softmax with an annealed temperature.
- reinforce: sampled from P(v), trained with the policy gradient, a learned value
  baseline (Huber value loss, eq. 1) and an entropy bonus (eq. 2).
At inference every learned strategy routes by argmax P(v).

Legend: b - batch, d - feature width, e - subnetworks per router, r - routers.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from routeviz.errors import RoutevizError, choose
from routeviz.runs.models import Encoded, ModelRunner
from sample_models import DAE_SYN, DAE_SYN_STRATEGIES, DAE_SYN_SUPERVISED

STRATEGIES = DAE_SYN_STRATEGIES
FORCED = ("tag", "hash", "monolithic")  # strategies whose routing is not learned
WEIGHTS_DIR = Path(__file__).parent / "weights"
_HASH_PRIME = 1_000_003


@dataclass
class DAEConfig:
    strategy: str = "top-k"  # one of STRATEGIES
    image_size: int = 32  # input and output images are image_size x image_size RGB
    channels: int = 32  # conv width of the encoder and decoder
    feature_dim: int = 64  # v: the encoder output the routers read
    embed_dim: int = 64  # width of each subnetwork's embedding vector
    n_routers: int = 4  # parallel conditional blocks (one per attribute)
    n_experts: int = 8  # subnetworks per router (1 for monolithic)
    value_hidden: int = 32  # hidden width of the REINFORCE baseline network
    hash_seed: int = 1234  # seed of the fixed pixel hash (hash routing)
    supervise: float = 0.0  # training only: share of examples whose tag supervised the routers

    @classmethod
    def for_strategy(cls, strategy: str, **overrides) -> DAEConfig:
        choose("routing strategy", strategy, STRATEGIES)
        n_experts = 1 if strategy == "monolithic" else 8
        return cls(strategy=strategy, n_experts=n_experts, **overrides)


class RouterDecision(NamedTuple):
    """One router's decision for a batch (what the tracer records)."""

    probs: torch.Tensor  # [b, e] routing distribution P(v)
    choice: torch.Tensor  # [b] chosen subnetwork
    weight: torch.Tensor  # [b] probability of the decision (1 where it was forced)
    gate: torch.Tensor  # [b] multiplier applied to the chosen embedding (1 but for top-k/ST)


class DAEOutput(NamedTuple):
    reconstruction: torch.Tensor  # [b, 3, H, W] in [0, 1]
    decisions: list  # one RouterDecision per router
    features: torch.Tensor  # [b, d] the routers' input v


class DAERouter(nn.Module):
    """Batch norm -> linear -> softmax over the block's subnetworks, then a decision."""

    def __init__(self, feature_dim: int, n_experts: int, strategy: str):
        super().__init__()
        self.strategy = strategy
        self.norm = nn.BatchNorm1d(feature_dim)
        self.linear = nn.Linear(feature_dim, n_experts)

    def forward(self, features, forced=None, tau: float = 1.0) -> RouterDecision:
        probs = F.softmax(self.linear(self.norm(features)), dim=-1)  # [b, e]
        ones = torch.ones(probs.shape[0], device=probs.device)
        learned = probs.argmax(dim=-1)  # [b]
        if forced is not None:  # tag / hash / monolithic; -1 = no tag: fall back to argmax
            choice = torch.where(forced >= 0, forced, learned)
            weight = torch.where(forced >= 0, ones, probs.gather(1, learned[:, None])[:, 0])
            return RouterDecision(probs, choice, weight, ones)
        if self.training and self.strategy == "reinforce":
            choice = torch.multinomial(probs, 1)[:, 0]
            return RouterDecision(probs, choice, _picked(probs, choice), ones)
        if self.training and self.strategy == "st-gumbel":
            uniform = torch.rand_like(probs).clamp(1e-9, 1 - 1e-7)
            gumbel = -torch.log(-torch.log(uniform))  # [b, e] Gumbel(0, 1) noise
            relaxed = F.softmax((torch.log(probs.clamp_min(1e-9)) + gumbel) / tau, dim=-1)
            choice = relaxed.argmax(dim=-1)
            picked = _picked(relaxed, choice)
            gate = 1.0 - picked.detach() + picked  # 1 forward, d(picked) backward
            return RouterDecision(probs, choice, _picked(probs, choice), gate)
        weight = _picked(probs, learned)
        gate = weight if self.strategy == "top-k" else ones
        return RouterDecision(probs, learned, weight, gate)


def _picked(probs, choice):
    return probs.gather(1, choice[:, None])[:, 0]  # [b]


class DiscreteAutoencoder(nn.Module):
    def __init__(self, config: DAEConfig):
        super().__init__()
        self.config = config
        c, size = config.channels, config.image_size
        self.bottom = size // 8  # spatial side after three stride-2 convs
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c // 2, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(c // 2, c, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(c, c, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(c * self.bottom ** 2, config.feature_dim), nn.ReLU(),
        )
        self.routers = nn.ModuleList(
            DAERouter(config.feature_dim, config.n_experts, config.strategy)
            for _ in range(config.n_routers))
        # the 4 x e subnetworks: each outputs its embedding vector whatever its input
        self.subnetworks = nn.Parameter(
            torch.randn(config.n_routers, config.n_experts, config.embed_dim) * 0.5)  # [r, e, d]
        self.decoder_in = nn.Linear(config.embed_dim, c * self.bottom ** 2)
        self.decoder = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(c, c, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(c // 2, 3, 4, 2, 1), nn.Sigmoid(),
        )
        if config.strategy == "reinforce":
            self.value = nn.Sequential(nn.Linear(config.feature_dim, config.value_hidden),
                                       nn.ReLU(), nn.Linear(config.value_hidden, 1))
        generator = torch.Generator().manual_seed(config.hash_seed)
        n_pixels = 3 * config.image_size ** 2
        self.register_buffer("hash_weights", torch.randint(
            1, 2 ** 20, (config.n_routers, n_pixels), generator=generator), persistent=False)

    def forced_choices(self, images, tag_ids=None):
        """[b, r] subnetworks fixed by the strategy, -1 where the router decides; or None."""
        b = images.shape[0]
        strategy = self.config.strategy
        if strategy == "monolithic":
            return torch.zeros(b, self.config.n_routers, dtype=torch.long, device=images.device)
        if strategy == "hash":
            return self.pixel_hash(images)
        if strategy == "tag":
            if tag_ids is None:
                return torch.full((b, self.config.n_routers), -1, device=images.device)
            return tag_ids.long()
        return None

    def pixel_hash(self, images):
        """A fixed hash of the 8-bit pixels per router -> subnetwork, [b, r]."""
        levels = (images.clamp(0, 1) * 255).round().long().flatten(1)  # [b, 3HW]
        codes = levels @ self.hash_weights.T  # [b, r], exact in int64
        return (codes % _HASH_PRIME) % self.config.n_experts

    def forward(self, images, tag_ids=None, tau: float = 1.0) -> DAEOutput:
        features = self.encoder(images)  # [b, d]
        forced = self.forced_choices(images, tag_ids)
        decisions, code = [], 0
        for i, router in enumerate(self.routers):
            decision = router(features, None if forced is None else forced[:, i], tau=tau)
            embedding = self.subnetworks[i][decision.choice]  # [b, d]
            code = code + decision.gate[:, None] * embedding
            decisions.append(decision)
        hidden = self.decoder_in(code).view(-1, self.config.channels, self.bottom, self.bottom)
        return DAEOutput(self.decoder(hidden), decisions, features)


def per_image_sse(reconstruction, images):
    """Sum of squared errors per image (pixels in [0, 1]), [b]."""
    return ((reconstruction - images) ** 2).flatten(1).sum(dim=1)


# -- weights -------------------------------------------------------------------------------

def weights_dir(name: str) -> Path:
    return WEIGHTS_DIR / name


def save(model: DiscreteAutoencoder, out_dir) -> None:
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / "model.safetensors"))
    (out_dir / "config.json").write_text(json.dumps(asdict(model.config), indent=2) + "\n")


def load_module(path) -> DiscreteAutoencoder:
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "model.safetensors").is_file():
        raise RoutevizError(f"no DAE-Syn weights in {str(path)!r}; train them with "
                            f"`python -m sample_models.train {path.name}`")
    config = DAEConfig(**json.loads((path / "config.json").read_text()))
    model = DiscreteAutoencoder(config)
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    return model.eval()


# -- runner ----------------------------------------------------------------------------------

class DAESynRunner(ModelRunner):
    def __init__(self, name: str, module: DiscreteAutoencoder):
        self.spec = next(spec for spec in (*DAE_SYN, *DAE_SYN_SUPERVISED) if spec.name == name)
        self.name = name
        self.module = module
        self.strategy = module.config.strategy
        self.description = (
            f"DAE-Syn discrete autoencoder (4 routers x {module.config.n_experts} subnetworks, "
            f"{self.strategy} routing), trained on the 4096 DAE-Syn images; any image is "
            f"resized to {module.config.image_size}x{module.config.image_size}")
        if self.strategy == "tag":
            self.description += ("; images without letter/location/fg/bg tags are routed by "
                                 "the router's learned prediction of those attributes")

    def encode(self, items) -> Encoded:
        from sample_models.dae_syn_data import indices_of

        size = self.module.config.image_size
        pixels, tag_ids, meta, tags, notes = [], [], [], [], []
        for item in items:
            if item.image is None:
                raise RoutevizError(f"{self.name} is an image model; it cannot take a text")
            image = item.image.convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size))
            pixels.append(torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
                          .view(size, size, 3))
            indices = indices_of(item.tags)
            tag_ids.append(indices if indices is not None else [-1] * 4)
            if self.strategy == "tag" and indices is None:
                notes.append(f"{item.source or 'image'}: no DAE-Syn tags; tag routing fell back "
                             "to the router's learned prediction")
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            meta.append({"modality": "image", "source": item.source, "label": item.label,
                         "image": buffer.getvalue()})
            tags.append(dict(item.tags))
        images = torch.stack(pixels).permute(0, 3, 1, 2).float() / 255  # [b, 3, H, W]
        inputs = {"images": images, "tag_ids": torch.tensor(tag_ids, dtype=torch.long)}
        return Encoded(inputs=inputs, tokens=[[] for _ in items], tags=tags, meta=meta,
                       notes=notes)

    @torch.no_grad()
    def predict(self, encoded: Encoded) -> list[str]:
        images = encoded.inputs["images"]
        out = self.module(**encoded.inputs)
        sse = per_image_sse(out.reconstruction, images)
        return [f"reconstruction L2 {float(v):.2f}" for v in sse]

    def trace_config(self) -> dict:
        cfg = self.module.config
        return {**super().trace_config(), "strategy": cfg.strategy, "n_layers": cfg.n_routers,
                "n_experts": cfg.n_experts, "top_k": 1, "image_size": cfg.image_size,
                "unit": "example", "supervise": cfg.supervise}


def load(name: str) -> DAESynRunner:
    """`dae-syn-<strategy>` or `dae-syn-<strategy>-sup<P>` with its shipped weights."""
    choose("DAE-Syn model", name, [spec.name for spec in (*DAE_SYN, *DAE_SYN_SUPERVISED)])
    return DAESynRunner(name, load_module(weights_dir(name)))
