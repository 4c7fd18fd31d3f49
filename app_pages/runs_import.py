"""Runs page, importing: routing that vLLM, SGLang, Megatron-Core or an RL framework recorded
(routeviz.importers), from uploaded files or paths on this machine, with the options of
`routeviz import`; the run's check (`routeviz check`) is shown beside the result."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from app_pages.common import select_run, show_error
from routeviz.errors import RoutevizError

FORMAT_DEFAULT = "(as the format says)"


def problem_line(p: dict) -> str:
    where = ", ".join(x for x in (p.get("site") and f"site `{p['site']}`",
                                  p.get("layer") is not None and f"layer {p['layer']}") if x)
    return f"{p['kind']}{f' ({where})' if where else ''}: {p['detail']}"


def import_section(handle, taken: set) -> None:
    from routeviz.importers import formats

    st.subheader("Import routing from vLLM, SGLang or Megatron")
    last = st.session_state.pop("import_result", None)
    if last:
        st.success(last["line"])
        for line in last["problems"]:
            st.warning(f"Check: {line}")
    cols = st.columns(3)
    fmt = cols[0].selectbox("Format", formats(), key="import_format",
                            help="As `routeviz import FORMAT`; see the README section "
                                 "\"Routing from vLLM, SGLang and Megatron\"")
    run = cols[1].text_input("Run name", key="import_run")
    model = cols[2].text_input("Checkpoint directory (--model)", key="import_model",
                               help="The transformers checkpoint the routing came from: its "
                                    "layer layout, the trace's site names, its tokenizer")
    uploads = st.file_uploader("Files (response bodies, .npy arrays, dumps, trace files)",
                               accept_multiple_files=True, key="import_upload")
    paths = st.text_area("…or paths on this machine, one a line (a Megatron trace directory "
                         "too)", key="import_paths", height=80)
    cols = st.columns(3)
    tokens_path = cols[0].text_input("Token file (--tokens): a path", key="import_tokens",
                                     help='JSONL, one {"token_ids": [...]} per example')
    tokens_upload = cols[1].file_uploader("…or upload it", type=["jsonl", "json"],
                                          key="import_tokens_upload")
    rank = cols[2].selectbox("Rank order (--rank-order)", [FORMAT_DEFAULT, "score",
                                                            "expert-id", "unknown"],
                             key="import_rank")
    overwrite = st.checkbox("Replace a run of the same name", key="import_overwrite_run")
    if not st.button("Import", key="import_go"):
        return
    try:
        name = run.strip()
        if not name:
            raise RoutevizError("give the imported run a name")
        if name in taken and not overwrite:
            raise RoutevizError(f"run {name!r} already exists: tick \"Replace a run of the same "
                                "name\" or choose another name")
        result = _import(handle, fmt, name, uploads or [], paths, model.strip() or None,
                         tokens_upload, tokens_path.strip() or None,
                         None if rank == FORMAT_DEFAULT else rank, overwrite and name in taken)
        version = result.config["import"]["version"]
        st.session_state["import_result"] = {
            "line": f"Run {name!r}: {result.n_examples} example(s), {result.rows:,} route rows "
                    f"imported from {fmt} ({version})",
            "problems": [problem_line(p) for p in result.problems]}
        select_run(name)
        st.rerun()
    except Exception as exc:  # noqa: BLE001 — one line in the page, the app keeps running
        show_error(exc)


def _import(handle, fmt, run, uploads, paths_text, model, tokens_upload, tokens_path,
            rank_order, overwrite):
    from routeviz.importers import read

    with tempfile.TemporaryDirectory(prefix="routeviz-import-") as tmp:
        files = []
        for upload in uploads:  # kept under their own names: a sidecar is found beside its file
            target = Path(tmp) / Path(upload.name).name
            target.write_bytes(upload.getvalue())
            files.append(target)
        files += [Path(line.strip()).expanduser() for line in (paths_text or "").splitlines()
                  if line.strip()]
        if not files:
            raise RoutevizError("nothing to import: upload files or give their paths")
        tokens = tokens_path
        if tokens_upload is not None:
            tokens = Path(tmp) / "tokens.jsonl"
            tokens.write_bytes(tokens_upload.getvalue())
        return read(fmt, files, handle.store.path, run, model=model, tokens=tokens,
                    overwrite=overwrite, rank_order=rank_order)
