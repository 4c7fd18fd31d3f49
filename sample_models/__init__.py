"""Sample conditional models that ship with routeviz, with their weights and training code.

The one place their metadata is written: `SAMPLES`, the `ModelSpec`s here, is declared in
pyproject.toml under the `routeviz.models` entry-point group, which is how routeviz finds
them. Listing them is cheap: a model's module is imported only when it is loaded. Each model module exposes
`load(name) -> routeviz.models.ModelRunner`.
"""

from __future__ import annotations

from routeviz.plugins import Example, ModelSpec, lazy

DAE_SYN_STRATEGIES = ("tag", "hash", "monolithic", "top-k", "st-gumbel", "reinforce")

# Inputs ready to run in the app ("Try: ..."): short texts like the training data, or a
# bundled dataset's item (its tags come along).
CODE_EXAMPLE = Example("a Python function",
                       text="def mean(values):\n    total = sum(values)\n    return total / len(values)\n")
PROSE_EXAMPLE = Example("a sentence of prose",
                        text="The experts of a mixture each learn a part of the language: "
                             "some take punctuation, others names or numbers.")
GLYPH_EXAMPLES = (Example("glyph 0 (a letter B)", dataset="glyphs", index=0),
                  Example("glyph 1 (a letter D)", dataset="glyphs", index=1))
DAE_SYN_EXAMPLES = (Example("dae-syn image 0 (red A, top-left, on black)", dataset="dae-syn",
                            index=0),)


TEXT_MOE = ModelSpec(
    "text-moe", "text", ("expert", "keep", "exit"), ("stdlib",),
    "small code-and-prose LM trained on the Python stdlib: top-2 MoE, mixture-of-depths, "
    "per-token early exit",
    lazy("sample_models.text_moe:load"), (CODE_EXAMPLE, PROSE_EXAMPLE))
GLYPH_VIT = ModelSpec(
    "glyph-vit", "image", ("keep", "merge", "expert", "exit"), ("glyphs",),
    "small ViT trained on glyph images: token dropping/merging, MoE, early exit",
    lazy("sample_models.glyph_vit:load"), GLYPH_EXAMPLES)
GLYPH_SOFT = ModelSpec(
    "glyph-soft", "image", ("soft", "dispatch"), ("glyphs",),
    "small ViT trained on glyph images with Soft MoE FFNs (4 experts x 2 slots): soft routing",
    lazy("sample_models.glyph_soft:load"), GLYPH_EXAMPLES)
GLYPH_ACT = ModelSpec(
    "glyph-act", "image", ("exit",), ("glyphs",),
    "small ViT trained on glyph images with A-ViT halting: each patch stops at its own depth",
    lazy("sample_models.glyph_act:load"), GLYPH_EXAMPLES)
DAE_SYN = tuple(
    ModelSpec(f"dae-syn-{strategy}", "image", ("expert",), ("dae-syn",),
              f"DAE-Syn discrete autoencoder, 4 routers x "
              f"{1 if strategy == 'monolithic' else 8} subnetwork(s), {strategy} routing",
              lazy("sample_models.dae_syn:load"), DAE_SYN_EXAMPLES)
    for strategy in DAE_SYN_STRATEGIES)
# the paper's §4.4 remedy: learned routers trained with the tag supervising P% of examples
DAE_SYN_SUPERVISED_STRATEGIES = ("top-k", "st-gumbel", "reinforce")
DAE_SYN_SUPERVISION = (1, 10, 100)  # P, percent of the 4096 examples whose tag is given
DAE_SYN_SUPERVISED = tuple(
    ModelSpec(f"dae-syn-{strategy}-sup{percent}", "image", ("expert",), ("dae-syn",),
              f"DAE-Syn, {strategy} routing, router supervised by the tag on {percent}% of "
              f"the examples",
              lazy("sample_models.dae_syn:load"), DAE_SYN_EXAMPLES)
    for strategy in DAE_SYN_SUPERVISED_STRATEGIES for percent in DAE_SYN_SUPERVISION)
MINILM_MOE = ModelSpec(
    "minilm-moe", "text", ("expert", "keep", "merge", "exit"), ("stdlib",),
    "pretrained all-MiniLM-L6-v2 with FFN experts, token pruning/merging, early exit",
    lazy("sample_models.minilm_moe:load"), (PROSE_EXAMPLE, CODE_EXAMPLE))
DINOV2_SMALL = ModelSpec(
    "dinov2-small", "image", ("expert", "keep", "merge", "exit"), ("glyphs",),
    "pretrained DINOv2-S with FFN experts, token pruning/merging, early exit",
    lazy("sample_models.dinov2_small:load"), GLYPH_EXAMPLES)
SAMPLES = (TEXT_MOE, GLYPH_VIT, GLYPH_SOFT, GLYPH_ACT, *DAE_SYN, *DAE_SYN_SUPERVISED, MINILM_MOE,
           DINOV2_SMALL)  # as `routeviz models` lists them
