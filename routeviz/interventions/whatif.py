"""What if: run one recorded example again with an intervention and compare (the app's
What-if panel, `app_pages/whatif.py`, is a thin layer over these).

- `example_item(store, run, example)`: the example's input, recovered from the store (a
  text from `examples.text`, an image from `examples.image`);
- `model_source(config)`: what to load to run it again (a checkpoint directory or a name);
- `rerun(runner, store, run, example, item, ...)`: records the input without the
  intervention (once per example, reused) and with it, each as a new run, and returns both
  names; the intervened run's config records the intervention and where it came from;
- `routing_side_by_side(store, plain, whatif)`: per token and expert site, the experts each
  run chose (rank order) and whether they differ.
"""

from __future__ import annotations

import io
import uuid

import pandas as pd

from routeviz.errors import RoutevizError
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


def rerun(runner, store, run: str, example: int, item: Item, ablate=(), force=(),
          top_k: int | None = None, disable=()) -> tuple[str, str]:
    """(plain run, what-if run) of `item`, recorded into `store` (see the module docstring)."""
    from routeviz.store import run_exists

    plain = _name(run, f"-e{int(example)}-plain")
    whatif = _name(run, f"-e{int(example)}-whatif-{uuid.uuid4().hex[:6]}")
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


def routing_side_by_side(store, plain: str, whatif: str) -> pd.DataFrame:
    """token, text, site, plain, whatif (chosen experts in rank order, '' where none), changed."""
    frames = []
    for name, run in (("plain", plain), ("whatif", whatif)):
        routes = store.example_routes(run, 0)
        routes = routes[(routes.kind == "expert") & (routes.token >= 0)]
        chosen = (routes.sort_values("rank").groupby(["token", "layer", "site"])
                  .choice.agg(lambda c: ", ".join(str(int(x)) for x in c)).rename(name))
        frames.append(chosen)
    both = pd.concat(frames, axis=1).fillna("").reset_index()
    tokens = store.example_tokens(plain, 0)
    both["text"] = [tokens[t] if 0 <= t < len(tokens) else "" for t in both.token]
    both["changed"] = both.plain != both.whatif
    return both.sort_values(["layer", "site", "token"])[
        ["token", "text", "site", "plain", "whatif", "changed"]].reset_index(drop=True)
