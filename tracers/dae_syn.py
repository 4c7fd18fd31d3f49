"""The DAE-Syn discrete autoencoder's routers (`sample_models.dae_syn.DAERouter`).

Each router makes one decision per image: a row per example (token -1) with the chosen
subnetwork and its routing probability; the site is the router's name (`routers.0` ..
`routers.3`) and the layer its index.
"""

from __future__ import annotations

from routeviz.store.schema import RouteEvent


def router_decision(module, inputs, output) -> RouteEvent:
    # output: RouterDecision(probs [b, e], choice [b], weight [b], gate [b])
    return RouteEvent("expert", choice=output.choice[:, None], weight=output.weight[:, None],
                      per_example=True)


def register(registry) -> None:
    from sample_models.dae_syn import DAERouter

    registry.register(DAERouter, router_decision)
