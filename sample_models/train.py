"""Reproduce a sample model's shipped weights: `python -m sample_models.train NAME [--steps N]`.

Each family's training code lives beside its model; this only dispatches by name. Training
never runs in tests or CI (a test runs a few steps into a temporary directory).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys

# name prefix -> "module:function"; the function takes (name, out_dir=None, steps=None, seed=0)
# and, if it can trace a probe series while training, probe_store=None, probe_every=None
TRAINERS = {
    "text-moe": "sample_models.text_moe_train:train",
    "glyph-vit": "sample_models.glyph_vit_train:train",
    "glyph-soft": "sample_models.glyph_soft_train:train",
    "glyph-act": "sample_models.glyph_act_train:train",
    "dae-syn": "sample_models.dae_syn_train:train",
    "minilm-moe": "sample_models.pretrained_build:build",
    "dinov2-small": "sample_models.pretrained_build:build",
}


def trainer_for(name: str):
    for prefix, target in TRAINERS.items():
        if name == prefix or name.startswith(prefix + "-"):
            module_name, func = target.split(":")
            return getattr(importlib.import_module(module_name), func)
    from routeviz.errors import RoutevizError

    raise RoutevizError(f"no training recipe for {name!r}; known: {', '.join(TRAINERS)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_models.train")
    parser.add_argument("name", help="sample model name, e.g. text-moe or dae-syn-top-k")
    parser.add_argument("--out", help="output directory (default: the shipped weights folder)")
    parser.add_argument("--steps", type=int, help="override the number of training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe", metavar="STORE",
                        help="trace a fixed probe set during training into this store as a "
                             "series (routeviz.probe); text-moe and dae-syn-* only")
    parser.add_argument("--probe-every", type=int, metavar="N",
                        help="steps between probes (default: each recipe's own)")
    parser.add_argument("--supervise", type=float, metavar="F",
                        help="share of examples whose tag supervises the router (paper §4.4; "
                             "dae-syn-* only); the model is saved as <name>-sup<100·F>")
    parser.add_argument("--init-from", metavar="DIR",
                        help="continue training from the weights in DIR (dae-syn-* only)")
    args = parser.parse_args(argv)
    trainer = trainer_for(args.name)
    options, accepts = {}, inspect.signature(trainer).parameters
    for flag, key, value in (("--probe", "probe_store", args.probe),
                             ("--supervise", "supervise", args.supervise),
                             ("--init-from", "init_from", args.init_from)):
        if value is not None and key not in accepts:
            print(f"error: {args.name} training takes no {flag}", file=sys.stderr)
            return 2
    if args.probe:
        options = {"probe_store": args.probe, "probe_every": args.probe_every}
    if args.supervise is not None:
        options["supervise"] = args.supervise
    if args.init_from:
        options["init_from"] = args.init_from
    trainer(args.name, out_dir=args.out, steps=args.steps, seed=args.seed, **options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
