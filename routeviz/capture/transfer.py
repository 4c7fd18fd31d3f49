"""Device to host: keep events on their device during the forward, copy once per batch.

Hooks keep device tensors (`detach_event`); at batch end `pack_events` packs every event's
tensors into one float32 buffer per device and copies each buffer to the host once.
"""

from __future__ import annotations

import numpy as np
import torch

from routeviz.store import schema


def detach_event(event: schema.RouteEvent, logits: bool = True) -> schema.RouteEvent:
    """Keep the event's tensors on their device, safe from later in-place edits (its logits
    only if they are recorded)."""
    def keep(t):
        return t.detach().clone() if isinstance(t, torch.Tensor) else t
    return event._replace(choice=keep(event.choice), weight=keep(event.weight),
                          valid=keep(event.valid), token_index=keep(event.token_index),
                          logits=keep(event.logits) if logits else None)


def pack_events(events, attention_mask, with_logits: bool):
    """Move every event's tensors to the host in one copy per device (tensors already on
    the host are taken as numpy arrays, with no torch op: at one input a batch, the ops
    would cost more than the copy).

    Returns, per event, host numpy arrays (choice int32, weight float32, token_index or
    None), plus the host attention mask and, if asked, host logits.
    """

    pieces = {}  # device -> list of float32 flat tensors
    layout = []  # per event: (device, [(slot, offset, shape, is_int)])
    sizes = {}

    def add(device, tensor, is_int):
        if device.type == "cpu":
            if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
                tensor = tensor.float()
            return ("host", tensor.detach().numpy().astype(np.int32 if is_int else np.float32))
        flat = tensor.reshape(-1)
        flat = flat.to(torch.int32).view(torch.float32) if is_int else flat.to(torch.float32)
        offset = sizes.get(device, 0)
        pieces.setdefault(device, []).append(flat)
        sizes[device] = offset + flat.numel()
        return (offset, tuple(tensor.shape), is_int)

    for _, event in events:
        choice = torch.as_tensor(event.choice)
        if event.valid is not None:
            choice = torch.where(event.valid.to(torch.bool), choice.to(torch.int64),
                                 torch.full_like(choice, schema.SKIP, dtype=torch.int64))
        device = choice.device
        weight = event.weight
        if weight is None:
            weight = torch.full(choice.shape, float("nan"), device=device)
        entry = [add(device, choice, True), add(device, torch.as_tensor(weight).to(device), False)]
        if event.token_index is not None:
            entry.append(add(device, event.token_index.to(device), True))
        if with_logits and event.logits is not None:
            entry.append(add(device, event.logits.to(device), False))
        layout.append((device, entry, event))
    mask = None
    if attention_mask is not None:
        mask_entry = add(attention_mask.device, attention_mask, True)
    host = {d: torch.cat(p).cpu().numpy() for d, p in pieces.items()}

    def take(device, slot):
        if slot[0] == "host":
            return slot[1]
        offset, shape, is_int = slot
        n = int(np.prod(shape)) if shape else 1
        arr = host[device][offset:offset + n]
        return (arr.view(np.int32) if is_int else arr).reshape(shape)

    out = []
    for device, entry, event in layout:
        choice, weight = take(device, entry[0]), take(device, entry[1])
        token_index = take(device, entry[2]) if event.token_index is not None else None
        logits = None
        if with_logits and event.logits is not None:
            logits = take(device, entry[-1])
        out.append((choice, weight, token_index, logits))
    if attention_mask is not None:
        mask = take(attention_mask.device, mask_entry)
    return out, mask


# --- hidden states (trace(..., hidden_states=True) only) ---------------------------------
def keep_site_input(hidden: dict, event_ids, inputs) -> None:
    """Keep a site's input, the hidden state its router received (its first floating-point
    positional argument), as a float16 device copy for each of the events it produced."""
    state = next((a for a in inputs if isinstance(a, torch.Tensor) and a.is_floating_point()),
                 None)
    if state is None:
        return
    state = state.detach().to(torch.float16, copy=True)  # [..., d] a copy: safe from in-place edits
    for index in event_ids:
        hidden[index] = state


def pack_hidden(hidden: dict) -> dict:
    """{event index: device tensor} -> {event index: host float16 array}, one copy per device
    (a tensor shared by several events is copied once)."""
    pieces, where, sizes, seen = {}, {}, {}, {}
    for index, state in hidden.items():
        if id(state) not in seen:
            device = state.device
            offset = sizes.get(device, 0)
            pieces.setdefault(device, []).append(state.reshape(-1))
            sizes[device] = offset + state.numel()
            seen[id(state)] = (device, offset, tuple(state.shape))
        where[index] = seen[id(state)]
    host = {d: torch.cat(p).cpu().numpy() for d, p in pieces.items()}
    out = {}
    for index, (device, offset, shape) in where.items():
        n = int(np.prod(shape)) if shape else 1
        out[index] = host[device][offset:offset + n].reshape(shape)
    return out
