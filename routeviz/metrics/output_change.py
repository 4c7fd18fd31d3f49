"""How much the model's output changed between two runs over the same inputs (an intervened
run against the plain one), from the `outputs` table (routeviz.outputs).

Text (one row per token): KL(against ‖ run) of the next-token distributions, in nats, per
token; its mean and max; how many tokens' most likely next token changed. Images (one row
per example, token -1): the same KL over the classes, and the change in probability of the
class the `against` run predicted. Units recorded in one run only are not compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from routeviz.metrics import _common as common

PAIRED = """
WITH a AS (SELECT example, token, logprobs FROM outputs WHERE run = $a_run),
     b AS (SELECT example, token, logprobs FROM outputs WHERE run = $b_run)
SELECT a.example, a.token, a.logprobs AS run_lp, b.logprobs AS against_lp
FROM a JOIN b ON a.example = b.example AND a.token = b.token
ORDER BY a.example, a.token"""

FLOOR = -65504.0  # the smallest float16: a log-probability that underflowed


def _stack(column) -> np.ndarray:
    return np.clip(np.stack([np.asarray(v, dtype=np.float64) for v in column]), FLOOR, 0.0)


def kl_divergence(p_log: np.ndarray, q_log: np.ndarray) -> np.ndarray:
    """KL(p ‖ q) per row of log-probabilities [n, v], in nats (0 where p has no mass)."""
    p = np.exp(p_log)
    return np.where(p > 0, p * (p_log - q_log), 0.0).sum(axis=-1).clip(min=0.0)


def output_change(store, run: str, against: str, top: int = 20) -> dict:
    """A JSON-able dict (see the module docstring); n_compared 0 and a note where either run
    recorded no outputs."""
    pairs = common.df(store, PAIRED, {"a_run": run, "b_run": against})
    if pairs.empty:
        return {"n_compared": 0, "note": f"no model outputs to compare for {run!r} and "
                f"{against!r} (recorded for small runs of models that return logits)"}
    run_lp, against_lp = _stack(pairs.run_lp), _stack(pairs.against_lp)
    if run_lp.shape != against_lp.shape:
        return {"n_compared": 0, "note": "the two runs' outputs have different sizes"}
    kl = kl_divergence(against_lp, run_lp)
    top_run, top_against = run_lp.argmax(-1), against_lp.argmax(-1)
    per_unit = pd.DataFrame({"example": pairs.example.astype(int), "token": pairs.token.astype(int),
                             "kl": kl, "top1_changed": top_run != top_against})
    per_example = bool((pairs.token < 0).all())
    out = {"kind": "class" if per_example else "next_token", "n_compared": len(per_unit),
           "mean_kl": float(kl.mean()), "max_kl": float(kl.max()),
           "n_top1_changed": int(per_unit.top1_changed.sum())}
    rows = np.arange(len(per_unit))
    if per_example:
        p_against = np.exp(against_lp[rows, top_against])
        p_run = np.exp(run_lp[rows, top_against])
        per_unit = per_unit.assign(cls=top_against, p_against=p_against, p_run=p_run,
                                   delta_p=p_run - p_against, cls_run=top_run)
        out["mean_abs_delta_p"] = float(np.abs(per_unit.delta_p).mean())
        out["examples"] = common.records(
            per_unit.drop(columns="token").rename(columns={"cls": "class_against",
                                                           "cls_run": "class_run"})
            .sort_values(["kl", "example"], ascending=[False, True]).head(top))
        return out
    texts = common.df(store, "SELECT example, token, text FROM tokens WHERE run = $a_run",
                      {"a_run": run})
    changed = (per_unit.merge(texts, on=["example", "token"], how="left")
               .sort_values(["kl", "example", "token"], ascending=[False, True, True]))
    out["tokens"] = common.records(changed[changed.kl > 0].head(top))
    return out
