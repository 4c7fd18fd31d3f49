"""A throwaway installed distribution: a `*.dist-info` folder (METADATA, entry_points.txt) and
its modules written into a directory, which importlib.metadata finds once the directory is
on sys.path. Tests use it to add plugins exactly as a third-party package would."""

from __future__ import annotations

from pathlib import Path


def write_distribution(directory: Path, name: str, entry_points: dict[str, dict[str, str]],
                       modules: dict[str, str] | None = None) -> Path:
    """entry_points: {group: {entry name: "module:attr"}}; modules: {file name: source}."""
    directory = Path(directory)
    for filename, source in (modules or {}).items():
        (directory / filename).write_text(source)
    dist = directory / f"{name.replace('-', '_')}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in named.items()) + "\n"
        for group, named in entry_points.items()))
    return dist
