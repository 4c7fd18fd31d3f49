"""One exception type for every user-facing failure: the CLI prints its message on one line."""


class RoutevizError(Exception):
    """A problem with the user's input or store, with a message meant for the user."""


class NoRoutingModules(RoutevizError):
    """The model has no module that any registered adapter recognises."""


class RunExists(RoutevizError):
    """The run is already in the store and neither overwrite nor append was asked."""


def choose(kind: str, name, choices) -> str:
    """Raise a RoutevizError naming the valid choices unless `name` is one of them."""
    choices = sorted(str(c) for c in choices)
    if name not in choices:
        listed = ", ".join(choices) if choices else "(none)"
        raise RoutevizError(f"unknown {kind} {name!r}; available: {listed}")
    return name
