"""Routing that other engines recorded, read into the one schema.

Each format (vLLM, SGLang, SGLang's recorder, Megatron-Core's router trace, plain `.npy`) is an
importer registered under the `routeviz.importers` entry-point group (`registry`); `base` is
what an importer returns, `layout` the model's routing layers and site names, `common` the
checks and the write, `check` the integrity of any run.

    routeviz.importers.read("vllm", ["bodies.jsonl"], store="routes/", run="served",
                            model="ckpt/", tokens="tokens.jsonl")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ImportResult:
    run: str
    format: str
    n_examples: int
    rows: int
    config: dict
    notes: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # routeviz.importers.check problems

    def to_json(self) -> dict:
        return {"run": self.run, "format": self.format, "examples": self.n_examples,
                "routes": self.rows, "version": self.config["import"]["version"],
                "rank_order": self.config["rank_order"], "notes": self.notes,
                "ok": not self.problems, "problems": self.problems}


def read(format: str, paths, store, run: str, *, model=None, tokens=None,
         overwrite: bool = False, rank_order: str | None = None,
         check: bool = True) -> ImportResult:
    """Import `paths` in `format` into `store` as `run`; bad input raises RoutevizError and
    creates no run.

    model: a transformers checkpoint directory (layer layout, site names, tokenizer);
    tokens: a JSONL file, one {"token_ids": [...]} per example; rank_order: say what the
    order within a token's top-k means (`score`, `expert-id`, `unknown`) where the format
    cannot; check: run `routeviz.importers.check` on the new run.
    """
    from routeviz.errors import RoutevizError
    from routeviz.importers import common
    from routeviz.importers.layout import Layout
    from routeviz.importers.registry import get
    from routeviz.store.schema import check_run_name

    check_run_name(run)
    importer = get(format)
    paths = [Path(p).expanduser() for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise RoutevizError("no input files given")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise RoutevizError(f"no such file: {missing[0]}")
    _refuse_existing(store, run, overwrite)
    layout = Layout.from_checkpoint(model) if model is not None else None
    token_lists = common.read_token_file(tokens) if tokens is not None else None
    _refuse_other_format(importer, paths)
    capture = importer.read(paths, {"layout": layout, "token_lists": token_lists})
    prepared = common.prepare(capture, layout, token_lists, format, rank_order)
    rows = common.write(prepared, store, run, layout, overwrite=overwrite)
    problems = []
    if check:
        from routeviz.importers.check import check_run
        from routeviz.store import open_store

        problems = check_run(open_store(store), run)["problems"]
    return ImportResult(run, format, len(prepared.examples), rows, prepared.config,
                        prepared.notes, problems)


def _refuse_existing(store, run: str, overwrite: bool) -> None:
    """Before any file is read: an existing run needs `overwrite`."""
    from routeviz.errors import RunExists
    from routeviz.store import run_exists

    if not overwrite and Path(store).expanduser().is_dir() and run_exists(store, run):
        raise RunExists(f"run {run!r} already exists in {str(store)!r}; pass overwrite=True "
                        "(CLI: --overwrite) to replace it")


def _refuse_other_format(importer, paths) -> None:
    """A file the chosen format's sniffer does not know and another's does: name that one."""
    from routeviz.errors import RoutevizError
    from routeviz.importers.registry import importers

    if importer.sniff is None:
        return
    for path in paths:
        if importer.sniff(path):
            continue
        others = [name for name, other in importers().items()
                  if other is not importer and other.sniff is not None and other.sniff(path)]
        if len(others) == 1:
            raise RoutevizError(f"{path.name} looks like {others[0]} output, not "
                                f"{importer.name}: try `routeviz import {others[0]} ...`")


def formats() -> list[str]:
    """The import formats installed."""
    from routeviz.importers.registry import importers

    return sorted(importers())
