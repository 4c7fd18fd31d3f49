"""What if: run one recorded example again with an intervention and compare (the app's
What-if panel, `app_pages/whatif.py`, is a thin layer over these).

- `example_item(store, run, example)`: the example's input, recovered from the store (a
  text from `examples.text`, an image from `examples.image`);
- `model_source(config)`: what to load to run it again (a checkpoint directory or a name);
- `plain_run(facts, run, example)`: the recorded run itself when it already is the plain
  run of that input (one example, no intervention), so no duplicate is recorded;
- `rerun(runner, store, run, example, item, ...)`: records the input with the intervention
  into a run named after it (`whatif-ablate-e3-top1-9b4d`), and without it (once per example,
  reused; or `plain` when given), and returns both names; the intervened run's config
  records the intervention and where it came from;
- `routing_side_by_side(store, plain, whatif)`: per token and routing site (experts, kept,
  merged, exit), what each run decided and whether it `changed`: THE one definition of a
  changed decision here, its first choice (top-1 expert, kept or dropped, merge target,
  exit layer) differs, or only one run decided; a top-k change that keeps the top-1
  expert is `others_changed`, not `changed`;
- `prediction_changes(store, plain, whatif, decode)`: the tokens whose next-token
  prediction (the model's top-1) changed, with both predictions.
"""

from __future__ import annotations

import io
import uuid

import pandas as pd

from routeviz.analysis.predictions import next_tokens
from routeviz.errors import RoutevizError
from routeviz.figures.labels import EXIT_SITE, exit_label  # EXIT_SITE: every exit decision, whichever head took it
from routeviz.interventions.intervene import intervene
from routeviz.runs.inputs import Item
from routeviz.runs.record import record
from routeviz.store.schema import check_run_name


def example_item(store, run: str, example: int) -> Item:
    info = store.example_info(run, int(example))
    if not info:
        raise RoutevizError(f"example {example} is not in run {run!r}")
    if info.get("modality") == "image":
        if info.get("image") is None:
            raise RoutevizError("this example's image was not stored; it cannot be run again")
        from PIL import Image

        image = Image.open(io.BytesIO(bytes(info["image"]))).convert("RGB")
        return Item(image=image, source=info.get("source"), label=info.get("label"))
    text = info.get("text")
    if not text:
        raise RoutevizError(f"run {run!r} did not keep its input texts (recorded by an older "
                            "routeviz); record the text again to ask what if")
    return Item(text=str(text), source=info.get("source"), label=info.get("label"))


def model_source(config: dict) -> str:
    """A checkpoint directory, else the model's name, from a run's config."""
    source = config.get("checkpoint") or config.get("model")
    if not source:
        raise RoutevizError("the run's config does not say which model recorded it")
    return str(source)


def _name(run: str, suffix: str) -> str:
    return check_run_name(f"{run[:128 - len(suffix)]}{suffix}")




def plain_run(facts, run: str, example: int) -> str | None:
    """`run` when it is already the plain run of its example 0: one example, recorded
    without an intervention; else None (a plain run is recorded)."""
    config = facts.config or {}
    if config.get("intervention") or facts.n_examples != 1 or int(example) != 0:
        return None
    return run


def describe_intervention(config: dict) -> str:
    """A run's intervention in one line, for the Runs table ('' for a plain run):
    `ablate blocks.0.mlp.router:3 · top-k 1 · off: exit · what-if of code #0`."""
    edit = (config or {}).get("intervention") or {}
    if not isinstance(edit, dict):
        return ""
    parts = [f"{verb} {', '.join(map(str, edit[verb]))}" for verb in ("ablate", "force")
             if edit.get(verb)]
    parts += [f"top-k {edit['top_k']}"] if edit.get("top_k") else []
    parts += [f"off: {', '.join(edit['disable'])}"] if edit.get("disable") else []
    origin = (config or {}).get("whatif_of")
    if parts and isinstance(origin, dict) and origin.get("run"):
        parts.append(f"what-if of {origin['run']} #{origin.get('example', 0)}")
    return " · ".join(parts)


def whatif_name(ablate=(), force=(), top_k: int | None = None, disable=()) -> str:
    """A short name that says the intervention: `whatif-ablate-e3-force-e0-top1-nokeep-9b4d`."""
    def experts(specs):
        return "".join(f"e{e}" for e in dict.fromkeys(str(s).rsplit(":", 1)[-1] for s in specs))

    parts = ([f"ablate-{experts(ablate)}"] if ablate else []) + (
        [f"force-{experts(force)}"] if force else []) + (
        [f"top{int(top_k)}"] if top_k else []) + (
        [f"no{'-no'.join(disable)}"] if disable else [])
    label = "-".join(parts)[:60].rstrip("-") or "edit"
    return check_run_name(f"whatif-{label}-{uuid.uuid4().hex[:4]}")


def rerun(runner, store, run: str, example: int, item: Item, ablate=(), force=(),
          top_k: int | None = None, disable=(), plain: str | None = None) -> tuple[str, str]:
    """(plain run, what-if run) of `item`, recorded into `store` (see the module docstring);
    `plain`: a run that already is the plain run of `item` (see `plain_run`)."""
    from routeviz.store import run_exists

    plain = plain or _name(run, f"-e{int(example)}-plain")
    whatif = whatif_name(ablate, force, top_k, disable)
    origin = {"run": run, "example": int(example)}
    with intervene(runner.module, ablate=ablate, force=force, top_k=top_k,
                   disable=disable) as edit:
        if edit.request.empty:
            raise RoutevizError("choose an expert to ablate or force, a top-k, or a kind of "
                                "decision to turn off")
        config = {"intervention": edit.config, "whatif_of": origin}
        record(runner, [item], store, whatif, config=config)
    if not run_exists(store, plain):
        record(runner, [item], store, plain, config={"whatif_of": origin})
    return plain, whatif


SIDE_BY_SIDE = ["token", "text", "site", "kind", "plain", "whatif", "changed", "others_changed"]


def _decisions(store, run: str) -> pd.DataFrame:
    """Per (token, kind, site) of example 0: `first` (the first choice) and `shown` (what
    was decided, in words); every exit under EXIT_SITE, whichever head took it."""
    routes = store.example_routes(run, 0)
    routes = routes[routes.kind.isin(["expert", "keep", "merge", "exit"])].copy()
    routes["kind"] = routes.kind.astype(str)
    routes["site"] = routes.site.astype(str).where(routes.kind != "exit", EXIT_SITE)
    rows = []
    for (token, kind, site), group in routes.sort_values("rank").groupby(
            ["token", "kind", "site"], sort=False):
        first = int(group.choice.iloc[0])
        if kind == "expert":
            shown = ", ".join(f"e{int(c)}" for c in group.choice)
        elif kind == "keep":
            shown = "kept" if first == 1 else "dropped"
        elif kind == "merge":
            shown = f"merged into #{first}"
        else:
            shown = f"exit at {exit_label(first)}"
        rows.append((int(token), kind, site, int(group.layer.min()), first, shown))
    return pd.DataFrame(rows, columns=["token", "kind", "site", "layer", "first", "shown"])


def routing_side_by_side(store, plain: str, whatif: str) -> pd.DataFrame:
    """token, text, site, kind, plain, whatif (what each run decided, '' where it did not),
    changed (the first choice differs, or one run only decided), others_changed (same
    first choice, other experts differ); ordered by layer, site, token."""
    a, b = _decisions(store, plain), _decisions(store, whatif)
    both = a.merge(b, on=["token", "kind", "site"], how="outer", suffixes=("_a", "_b"))
    both["layer"] = both.layer_a.fillna(both.layer_b)
    both["plain"] = both.shown_a.fillna("")
    both["whatif"] = both.shown_b.fillna("")
    both["changed"] = both.first_a.isna() | both.first_b.isna() | (both.first_a != both.first_b)
    both["others_changed"] = ~both.changed & (both.plain != both.whatif)
    tokens = store.example_tokens(plain, 0)
    both["text"] = [tokens[int(t)] if 0 <= t < len(tokens) else "(whole example)"
                    for t in both.token]
    both["token"] = both.token.astype(int)
    return both.sort_values(["layer", "site", "token"])[SIDE_BY_SIDE].reset_index(drop=True)


def prediction_changes(store, plain: str, whatif: str, decode=None) -> pd.DataFrame:
    """token, text, plain_next, plain_probability, whatif_next, whatif_probability: the
    tokens of example 0 after which the model's most likely next token changed."""
    a, b = next_tokens(store, plain, 0, decode), next_tokens(store, whatif, 0, decode)
    both = a.merge(b, on=["token", "text"], suffixes=("_a", "_b"))
    both = both[both.next_id_a != both.next_id_b]
    return pd.DataFrame({
        "token": both.token, "text": both.text,
        "plain_next": both.next_token_a, "plain_probability": both.probability_a,
        "whatif_next": both.next_token_b, "whatif_probability": both.probability_b,
    }).reset_index(drop=True)
