"""The `hook_vs_model` check: a traced transformers run against the model's own router logits.

Families whose forward takes `output_router_logits=True` (Mixtral, Qwen-MoE, OLMoE, ...) hand
back one `[tokens, experts]` logit tensor per routing layer, in layer order. For the run's
first examples (their text is in `examples.text`), the checkpoint the run names is run again
and each token's top-k of those logits is compared with the expert set the hooks recorded at
the same site. A disagreement means the hooks read the wrong output, or the checkpoint changed
since the trace. Imported runs, runs with an intervention, and families without router logits
are not checked (the check says it did not run).
"""

from __future__ import annotations

from pathlib import Path

from routeviz.metrics import _common as common

MAX_EXAMPLES = 8

STORED = """SELECT site, token, list_sort(list(choice)) AS chosen FROM routes
WHERE run = $run AND example = $example AND kind = 'expert' AND token >= 0
GROUP BY site, token"""


def hook_vs_model(store, run: str, facts) -> tuple[list, bool]:
    """([(site, layer, detail)] of the sites that disagree, whether the check ran)."""
    config = facts.config
    checkpoint = config.get("checkpoint")
    if (config.get("source") == "import" or config.get("intervention") or not checkpoint
            or not Path(str(checkpoint)).is_dir()):
        return [], False
    sites = list(facts.sites_of("expert").site)
    if not sites:
        return [], False
    texts = common.df(store, "SELECT example, text FROM examples WHERE run = $run AND text IS "
                      f"NOT NULL ORDER BY example LIMIT {MAX_EXAMPLES}", {"run": run})
    if texts.empty:
        return [], False
    import torch

    from routeviz.runs.inputs import Item
    from routeviz.runs.models import HFTextRunner

    try:
        runner = HFTextRunner(Path(str(checkpoint)))
    except Exception:  # noqa: BLE001 — the checkpoint no longer loads: nothing to compare
        return [], False
    mismatched = {}  # site -> [count, first (example, token, stored, model)]
    for rec in texts.itertuples(index=False):
        encoded = runner.encode([Item(text=str(rec.text))])
        with torch.no_grad():
            try:
                out = runner.module(**encoded.inputs, output_router_logits=True)
            except TypeError:  # the family's forward takes no output_router_logits
                return [], False
        logits = getattr(out, "router_logits", None)
        if not logits or len(logits) != len(sites):
            return [], False
        stored = common.df(store, STORED, {"run": run, "example": int(rec.example)})
        stored = {(str(s), int(t)): sorted(int(c) for c in chosen)
                  for s, t, chosen in stored.itertuples(index=False)}
        mask = encoded.inputs["attention_mask"][0].bool()
        for site, site_logits in zip(sites, logits):
            k = _top_k(config, site, stored, site)
            if not k:
                continue
            rows = site_logits.reshape(-1, site_logits.shape[-1])[: len(mask)][mask]
            model_top = torch.topk(rows.float().softmax(-1), k, dim=-1).indices.sort(-1).values
            for token, experts in enumerate(model_top.tolist()):
                recorded = stored.get((site, token))
                if recorded is not None and recorded != experts:
                    entry = mismatched.setdefault(site, [0, (int(rec.example), token, recorded,
                                                             experts)])
                    entry[0] += 1
    layers = dict(zip(facts.sites_of("expert").site, facts.sites_of("expert").layer))
    found = [(site, layers.get(site),
              (f"{n} token(s) recorded other experts than the model's own router logits "
               f"give; first example {ex} token {tok}: recorded {rec}, model {model}"))
             for site, (n, (ex, tok, rec, model)) in mismatched.items()]
    return found, True


def _top_k(config: dict, site: str, stored: dict, name: str) -> int | None:
    """The site's k: its config entry, the run's, else the size of its recorded sets."""
    per_site = (config.get("sites") or {}).get(site) or {}
    k = per_site.get("top_k") if isinstance(per_site, dict) else None
    if k is None and not isinstance(config.get("top_k"), dict):
        k = config.get("top_k")
    if k is None:
        sizes = {len(v) for (s, _), v in stored.items() if s == name}
        k = sizes.pop() if len(sizes) == 1 else None
    return int(k) if k else None
