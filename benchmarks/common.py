"""Helpers shared by the benchmarks: synthetic route rows, medians, memory readings."""

from __future__ import annotations

import os
import resource
import statistics
import time

import numpy as np


def mixtral_like_routes(rng, n_examples: int, seq: int, layers: int = 4, experts: int = 8,
                        k: int = 2, first_example: int = 0):
    """Route columns as a Mixtral router writes them: softmax top-k, renormalised weights.

    Returns a list of `RouteColumns`, one per layer (site), examples numbered from
    `first_example`.
    """
    from routeviz.store.writer import RouteColumns

    t = n_examples * seq
    example = np.repeat(np.arange(first_example, first_example + n_examples, dtype=np.int64),
                        seq * k)  # [t*k]
    token = np.tile(np.repeat(np.arange(seq, dtype=np.int32), k), n_examples)  # [t*k]
    rank = np.tile(np.arange(k, dtype=np.int8), t)  # [t*k]
    out = []
    for layer in range(layers):
        logits = rng.standard_normal((t, experts), dtype=np.float32)  # [t, e]
        probs = np.exp(logits)
        probs /= probs.sum(1, keepdims=True)
        top = np.argsort(-probs, axis=1)[:, :k]  # [t, k]
        weight = np.take_along_axis(probs, top, 1)
        weight /= weight.sum(1, keepdims=True)
        out.append(RouteColumns(
            example=example, token=token, layer=np.full(t * k, layer, np.int16),
            site=np.full(t * k, layer, np.int32), kind=np.zeros(t * k, np.int8),
            choice=top.reshape(-1).astype(np.int32), rank=rank,
            weight=weight.reshape(-1).astype(np.float32)))
    return out


def median(values):
    return float(statistics.median(values))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window for this process (Linux: clear_refs 5); False if refused."""
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def window_peak_rss_mb() -> float:
    """Peak resident memory since the last `reset_peak_rss` (VmHWM, MB)."""
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return peak_rss_mb()


def rss_mb() -> float:
    """Current resident memory of this process (MB), from /proc."""
    with open(f"/proc/{os.getpid()}/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def machine() -> dict:
    import platform

    import torch

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(),
            "processor": _cpu_model(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "gpu": torch.cuda.is_available(),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def scratch() -> str:
    """A folder for benchmark stores: build/ in the repository, on the filesystem a store in
    the working directory (the app's) lives on. (On this machine /tmp creates a directory
    ~25x slower, which a trace's run folders would pay.)"""
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "build" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.extend(children.get(pid, []))
        todo.extend(children.get(pid, []))
    return out


def child_cpu() -> dict | None:
    """CPU seconds used so far by this process's descendants, split into the Streamlit
    server (`server`) and Chromium with its renderers (`browser`); None off Linux. The
    difference of two readings is what an action cost each side, whatever the load: wall
    time on a shared machine swings with it, CPU time much less."""
    if not os.path.isdir("/proc"):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    out = {"server": 0.0, "browser": 0.0}
    for pid in _descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ")
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        if b"streamlit" in cmd:
            out["server"] += seconds
        elif b"chrom" in cmd:
            out["browser"] += seconds
    return out


def cpu_spent(before: dict | None, after: dict | None) -> dict | None:
    if before is None or after is None:
        return None
    return {k: round(after[k] - before[k], 3) for k in before}
