"""Making runs: models and inputs in, stored runs out.

`models` (sample models and checkpoint directories, behind one runner interface),
`inputs`, `uploads` and `windows` (texts, files and images made safe and cut to size),
`record` (one call that traces a runner over items into a run), `probe` (routing recorded
during training, one run per step of a series).
"""
