"""Changing or explaining routing on a live model.

`intervene` (ablate, force, top-k and disabled decisions, undone on exit), `whatif` (a
plain and an intervened run of the same inputs, stored side by side), `attribution` and
`explain` (Integrated Gradients on a router logit: which inputs drive one decision).
"""
