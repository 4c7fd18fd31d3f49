"""`routeviz experts`: expert cards (routeviz.analysis.cards) as JSON or a readable table."""

from __future__ import annotations

import json

from routeviz.cli.common import json_default


def add_parsers(sub) -> None:
    s = sub.add_parser("experts", help="expert cards: what each expert does, against chance")
    s.add_argument("--store", required=True)
    s.add_argument("--run", required=True)
    s.add_argument("--site", help="one expert site (default: every one)")
    s.add_argument("--expert", type=int, help="one expert of --site")
    s.add_argument("--tag", action="append", metavar="NAME",
                   help="tag family to label by (repeatable; default: the content families)")
    s.add_argument("--min-count", type=int, default=5, metavar="N",
                   help="units a tag value or token needs with the expert to count (5)")
    s.add_argument("--ablation", action="store_true",
                   help="also ablate each expert on the run's first inputs (loads the model; "
                        "records the runs into the store)")
    s.add_argument("--ablation-examples", type=int, default=16, metavar="N")
    s.add_argument("--json", action="store_true")


def cmd_experts(args):
    from routeviz.analysis.cards import expert_cards
    from routeviz.errors import RoutevizError
    from routeviz.store import open_store

    store = open_store(args.store)
    if args.expert is not None and not args.site:
        raise RoutevizError("--expert needs --site (expert ids are per site)")
    if args.min_count < 1:
        raise RoutevizError(f"--min-count must be 1 or more, got {args.min_count}")
    runner = None
    if args.ablation:
        from routeviz.interventions.whatif import model_source
        from routeviz.runs.models import load_model

        store.require_run(args.run)
        runner = load_model(model_source(store.config(args.run)))
    result = expert_cards(store, args.run, site=args.site, expert=args.expert, tags=args.tag,
                          min_count=args.min_count, runner=runner,
                          ablation_examples=args.ablation_examples)
    if args.json:
        print(json.dumps({"run": args.run, "unit": result.unit, "test": result.rule,
                          "cards": result.cards}, default=json_default))
        return
    print(table(result))


def table(result) -> str:
    """One line per card: site, expert, load, label, top tokens; the test underneath."""
    lines = [f"{'site':<28} {'expert':>6} {'load':>6} {'rank':>5}  label / top tokens"]
    for card in result.cards:
        tokens = ", ".join(f"{t['text']!r}×{t['n']}" for t in card["tokens"][:4])
        load = card["load"]
        lines.append(f"{card['site'][-28:]:<28} {card['expert']:>6} {load['share']:>6.1%} "
                     f"{load['rank']:>5}  {card['label']}")
        if tokens:
            lines.append(f"{'':<49}tokens: {tokens}")
        if card["ablation"]:
            a = card["ablation"]
            lines.append(f"{'':<49}ablated: mean KL {a.get('mean_kl', 0):.3f} nats, "
                         f"{a.get('n_top1_changed', 0)} top-1 changed")
    rule = result.rule
    lines.append("")
    lines.append(f"labels: tag values beyond chance ({rule['method']}; Bonferroni over each "
                 f"site's tests at alpha {rule['alpha']}; at least {rule['min_count']} units "
                 f"and {rule['min_lift']}× chance). Families: "
                 f"{', '.join(rule['families']) or '(none)'}"
                 + (f"; left out: {', '.join(rule['left_out'])}" if rule["left_out"] else ""))
    return "\n".join(lines)


COMMANDS = {"experts": cmd_experts}
