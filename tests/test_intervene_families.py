"""Ablation on each transformers family routeviz can re-route: the router's output under
`routeviz.intervene`, read by a plain hook of the test's own, never holds the ablated expert
and weights the rest as the family does, computed here from the plain run's logits."""

import pytest
import torch

import routeviz
from tests.families import BY_NAME, hook_routers

ABLATED = 1
FAMILIES = ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "granitemoe", "llama4", "switch"]


def expected(family, logits):
    """(experts [t, k] as sets, weights [t, k] sorted) the family gives with ABLATED gone."""
    logits = logits.float().clone()
    logits[..., ABLATED] = float("-inf")
    if family.weights == "sigmoid":
        top, index = logits.topk(family.k, dim=-1)
        return index, torch.sigmoid(top)
    probs = torch.softmax(logits, dim=-1)
    top, index = probs.topk(family.k, dim=-1)
    if family.weights == "sum1":
        top = top / top.sum(-1, keepdim=True)
    return index, top


def first_call(seen, family):
    name = min(seen, key=lambda n: [int(p) if p.isdigit() else p for p in n.split(".")])
    return seen[name][0]


@pytest.mark.parametrize("name", FAMILIES)
def test_ablated_expert_is_never_chosen_and_rest_weighted_as_family(name):
    family = BY_NAME[name]
    model = family.build()
    torch.manual_seed(1)
    ids = torch.randint(1, 60, (2, 8))
    seen, handles = hook_routers(model, family.router)
    try:
        with torch.no_grad():
            model(input_ids=ids)
            plain = first_call(seen, family)
            seen.clear()
            with routeviz.intervene(model, ablate=[f"*:{ABLATED}"]) as edit:
                model(input_ids=ids)
            edited = first_call(seen, family)
    finally:
        for h in handles:
            h.remove()
    assert edit.plans and all(p.ablate == {ABLATED} for p in edit.plans.values())
    if name == "switch":
        dispatch, top_prob, _ = edited  # [b, s, e], [b, s, 1], [b, s, e]
        assert dispatch[..., ABLATED].sum() == 0
        kept = dispatch.sum(-1) > 0
        index, weights = expected(family, plain[2])
        assert kept.any()
        assert torch.equal(dispatch.argmax(-1)[kept], index[..., 0][kept])
        assert torch.allclose(top_prob[..., 0].float(), weights[..., 0], atol=1e-5)
        return
    if name == "llama4":
        scores, _ = edited
        weights, index = scores.topk(family.k, dim=-1)
    else:
        _logits, weights, index = edited
    want_index, want_weights = expected(family, plain[1] if name == "llama4" else plain[0])
    assert not (index == ABLATED).any()
    assert torch.equal(index.sort(-1).values, want_index.sort(-1).values)
    assert torch.allclose(weights.float().sort(-1).values, want_weights.sort(-1).values,
                          atol=1e-5)
