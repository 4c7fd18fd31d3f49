"""`vllm`: routing vLLM returns with `--enable-return-routed-experts`.

- OpenAI-compatible server bodies (`.json` / `.jsonl`): `choices[i].routed_experts` is
  base64 of `.npy` bytes (0.22+; uint8 for up to 256 experts, else uint16) or nested JSON
  lists (0.21); one example per choice. Token ids come from the body where it carries them
  (`return_token_ids`: `prompt_token_ids` and the choice's `token_ids`).
- Offline arrays (`.npy`): `RequestOutput.outputs[i].routed_experts` saved with `np.save`,
  one request each.

Rows are prompt + output − 1 (the last sampled token is never fed back), starting at
`routed_experts_prompt_start` where the request set it (read from the body where present,
else inferred from the token count). The layer axis is the model's `num_hidden_layers`:
dense layers come back as expert 0 and are dropped with `--model`. vLLM gives no gate
weights, and its top-k order depends on the kernel, so `rank_order` is `unknown`.
"""

from __future__ import annotations

from routeviz.errors import RoutevizError
from routeviz.importers.base import (
    Capture,
    Importer,
    Sequence,
    as_experts,
    decode_base64,
    load_npy_bytes,
    nested_experts,
)
from routeviz.importers.bodies import read_bodies
from routeviz.importers.npy import _arrays

BASE64 = "openai-0.22+ (base64 .npy)"
LISTS = "openai-0.21 (nested lists)"
OFFLINE = "offline RequestOutput arrays (.npy)"


def read(paths, options) -> Capture:
    sequences, versions = [], []
    for path in paths:
        if path.suffix in (".npy", ".npz"):
            for name, array in _arrays(path):
                sequences.append(Sequence(as_experts(array, name), name, start=None,
                                          trailing=1))
            versions.append(OFFLINE)
            continue
        for body, where in read_bodies(path):
            choices = body.get("choices")
            if not isinstance(choices, list) or not choices:
                raise RoutevizError(f"{where}: no choices: not a vLLM OpenAI-server body")
            for i, choice in enumerate(choices):
                seq, version = _choice(body, choice, f"{where} choice {i}")
                sequences.append(seq)
                versions.append(version)
    return Capture(sequences, version=", ".join(dict.fromkeys(versions)) or "none",
                   rank_order="unknown", files=[str(p) for p in paths])


def _choice(body: dict, choice, where: str) -> tuple[Sequence, str]:
    if not isinstance(choice, dict) or "routed_experts" not in choice:
        raise RoutevizError(f"{where}: no routed_experts (start vLLM with "
                            "--enable-return-routed-experts)")
    value = choice["routed_experts"]
    if value is None:
        raise RoutevizError(f"{where}: routed_experts is null (no forward pass ran)")
    if isinstance(value, str):
        experts, version = as_experts(load_npy_bytes(decode_base64(value, where), where),
                                      where), BASE64
    elif isinstance(value, list):
        experts, version = nested_experts(value, where), LISTS
    else:
        raise RoutevizError(f"{where}: routed_experts is a {type(value).__name__}, neither "
                            "base64 nor nested lists")
    prompt = choice.get("prompt_token_ids", body.get("prompt_token_ids"))
    output = choice.get("token_ids")
    ids = list(prompt) + list(output) if isinstance(prompt, list) and isinstance(
        output, list) else None
    start = choice.get("routed_experts_prompt_start", body.get("routed_experts_prompt_start"))
    if start is not None and (not isinstance(start, int) or isinstance(start, bool)):
        raise RoutevizError(f"{where}: routed_experts_prompt_start {start!r} is not a count")
    return Sequence(experts, where, token_ids=ids, start=start, trailing=1), version


def sniff(path) -> bool:
    if path.suffix == ".npy":
        return True
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:200000]
    except OSError:
        return False
    return '"choices"' in head and '"routed_experts"' in head and '"meta_info"' not in head


IMPORTER = Importer("vllm", "vLLM --enable-return-routed-experts: OpenAI-server bodies "
                    "(base64 .npy or nested lists) or offline .npy arrays", read, sniff)
