"""Why: which input tokens (or patches) drive one token's router at one site.

`render_explain(handle, run, example, config)` draws the panel for one recorded example
(Inspect calls it under the example view). It follows the token and site selected on the
page (`inspect_selected_token`: a click on a heatmap cell or an image patch, the token
picker or a found occurrence) and offers its own pickers, listing only the tokens the
site routed; "Explain" recovers the example's input from the store (examples.text for a
text, the PNG in examples.image for an image), runs routeviz.explain on the run's model
and draws the attributions over the text (token chips, red = pushes the logit up, blue =
down) or over the image (a patch overlay), with a colour legend. The colour scale is set
by the other tokens (the target's own attribution, usually by far the largest, is clipped
and outlined), and a convergence delta past DELTA_WARN of the logit change is a warning.
"""

from __future__ import annotations

import html
import io

import numpy as np
import streamlit as st

from app_pages.common import cached, load_runner, query, run_facts, show_error
from routeviz.errors import RoutevizError
from routeviz.figures import data

SELECTED = "inspect_selected_token"  # {run, example, token, text, site} set by Inspect
OVERLAY_PX = 384  # the image drawn this wide at least
DELTA_WARN = 0.05  # |convergence delta| / |logit - baseline logit| past which we warn
UP, DOWN = "214,39,40", "31,119,180"  # red raises the router logit, blue lowers it


def _explain(store, run, example, site, token, expert, steps):
    from routeviz.interventions.explain import explain
    from routeviz.interventions.whatif import example_item, model_source

    item = example_item(store, run, example)
    runner = load_runner(model_source(store.config(run)))
    return explain(runner, item, site, int(token), expert, n_steps=int(steps)).to_json()


explain_cached = cached(_explain)


def render_explain(handle, run: str, example: int, config: dict | None = None,
                   key: str = "explain") -> None:
    """The panel for `example` of `run` (config: the run's config; read here if None)."""
    config = config if config is not None else query(handle, lambda s: s.config(run))
    facts = run_facts(handle, run)
    sites = facts["sites"]
    expert_sites = sites[sites["kind"] == "expert"]["site"].tolist()
    if not expert_sites:
        st.info("This run has no expert routing to explain.")
        return
    tokens = query(handle, lambda s: s.example_tokens(run, int(example)))
    if not tokens:
        st.info("This example has no tokens to explain.")
        return
    wanted = _follow_selection(run, example, expert_sites, len(tokens), key)
    left, middle, right = st.columns([3, 3, 2])
    site = left.selectbox("Router site", expert_sites, key=f"{key}_site",
                          format_func=data.short_site)
    routed = routed_tokens(handle, run, int(example), site)
    if not routed:
        st.info(f"`{data.short_site(site)}` routed no token of this example.")
        return
    if wanted is not None and wanted not in routed:
        st.info(f"Token #{wanted} `{data.show_token(tokens[wanted])}` was not routed at "
                f"`{data.short_site(site)}` (dropped, merged or exited before it, or not "
                "selected there): pick another site, or one of the tokens it routed.")
    if st.session_state.get(f"{key}_token") not in routed:
        st.session_state[f"{key}_token"] = routed[0]
    token = middle.selectbox(f"Token ({len(routed)} routed here)", routed, key=f"{key}_token",
                             format_func=lambda t: f"#{t} {data.show_token(tokens[t])}")
    n_experts = _n_experts(config, site)
    expert = right.selectbox("Expert", [None] + list(range(n_experts)), key=f"{key}_expert",
                             format_func=lambda e: "its top-1" if e is None else str(e))
    asked = (run, int(example), site, int(token), expert)
    if st.button("Explain", key=f"{key}_go", type="primary"):
        st.session_state[f"{key}_asked"] = asked
    if st.session_state.get(f"{key}_asked") != asked:
        st.caption("Integrated Gradients on the chosen expert's router logit for this token: "
                   "how much each input token (or patch) moves it.")
        return
    try:
        with st.spinner("Integrated Gradients (32 steps)…"):
            result = explain_cached(handle, run, int(example), site, int(token), expert, 32)
    except RoutevizError as exc:
        show_error(exc)
        return
    _draw(handle, run, example, result, key)


def _routes_at(store, run, example, site):
    routes = store.example_routes(run, example)
    at = routes[(routes["site"] == site) & (routes["kind"] == "expert") & (routes["token"] >= 0)]
    return sorted(int(t) for t in set(at["token"]))


routed_tokens = cached(_routes_at)  # the tokens `site` routed in the example, as recorded


def _follow_selection(run, example, expert_sites, n_tokens, key) -> int | None:
    """Take the page's selected token (and its site, if an expert site) when it changes;
    returns the token just taken (None when the selection did not change)."""
    selected = st.session_state.get(SELECTED) or {}
    if selected.get("run") != run or selected.get("example") != int(example):
        return None
    mark = (selected.get("token"), selected.get("site"))
    if st.session_state.get(f"{key}_followed") == (run, int(example), mark):
        return None
    st.session_state[f"{key}_followed"] = (run, int(example), mark)
    if mark[1] in expert_sites:
        st.session_state[f"{key}_site"] = mark[1]
    if isinstance(mark[0], int) and 0 <= mark[0] < n_tokens:
        st.session_state[f"{key}_token"] = mark[0]
        return mark[0]
    return None


def _n_experts(config: dict, site: str) -> int:
    from app_pages.common import n_experts_for

    return n_experts_for(config or {}, site)


def _draw(handle, run, example, result: dict, key: str) -> None:
    target = result["target"]
    unit = result["input"]["unit"]
    st.markdown(f"**{unit.capitalize()} #{target['token']}** "
                f"`{data.show_token(target['text'] or '')}` → expert **{target['expert']}** at "
                f"`{data.short_site(target['site'])}`: router logit {target['logit']:.3f} "
                f"(baseline {target['baseline_logit']:.3f})")
    if result["input"]["modality"] == "image":
        image = _overlay(handle, run, example, result)
        if image is not None:
            st.image(image, width=OVERLAY_PX)
    else:
        st.html(chips_html(result))
    st.html(legend_html(result))
    change = target["logit"] - target["baseline_logit"]
    delta = result["convergence_delta"]
    if abs(delta) > DELTA_WARN * max(abs(change), 1e-9):
        st.warning(f"Convergence delta {delta:+.3g} is {abs(delta) / max(abs(change), 1e-9):.0%}"
                   f" of the logit change ({change:+.3g}): the attributions do not add up to "
                   "it, because routing changed along the path from the baseline (a token "
                   "dropped, merged or exited). Read them as rough.")
    st.caption(f"Sum of attributions {result['sum_attributions']:.4f} = logit − baseline "
               f"logit ({target['logit'] - target['baseline_logit']:.4f}) + convergence "
               f"delta {result['convergence_delta']:.4g} ({result['n_steps']} steps; a large "
               "delta means routing changed along the path, e.g. a token dropped or exited).")


def colour_scale(result: dict) -> float:
    """The |attribution| that gets full colour: the largest of the tokens other than the
    target (the target's own is usually several times larger and would leave the rest
    pale; it is clipped to full colour and outlined)."""
    target = result["target"]["token"]
    scores = np.array([a["attribution"] for a in result["attributions"]], dtype=float)
    others = np.array([a["attribution"] for a in result["attributions"] if a["index"] != target],
                      dtype=float)
    largest = float(np.abs(others).max()) if others.size else 0.0
    return largest or float(np.abs(scores).max()) or 1.0


def legend_html(result: dict) -> str:
    """What the colours mean, and the scale's end."""
    largest = colour_scale(result)
    unit = result["input"]["unit"]
    swatches = "".join(
        f'<span style="background:rgba({rgb},{alpha});padding:1px 6px;margin:0 2px;'
        f'border-radius:3px;font-family:monospace">{label}</span>'
        for rgb, alpha, label in ((DOWN, 1, f"−{largest:.3g}"), (DOWN, 0.4, ""), (UP, 0, "0"),
                                  (UP, 0.4, ""), (UP, 1, f"+{largest:.3g}")))
    return (f'<div class="rv-attr-legend" style="font-size:0.85em">{swatches} '
            f'<span style="color:rgb({UP})">red</span>: the {unit} raises the router logit, '
            f'<span style="color:rgb({DOWN})">blue</span>: lowers it; full colour at '
            f"±{largest:.3g}, the largest attribution of any {unit} but the target (outlined; "
            "its own may be larger and is clipped to full colour).</div>")


def chips_html(result: dict) -> str:
    """The input's tokens as chips coloured by attribution (red up, blue down) on the
    `colour_scale` (clipped), the target outlined; token text escaped."""
    largest = colour_scale(result)
    target = result["target"]["token"]
    chips = []
    for a in result["attributions"]:
        share = float(np.clip(a["attribution"] / largest, -1.0, 1.0))
        rgb = UP if share >= 0 else DOWN
        outline = "outline:2px solid #222;" if a["index"] == target else ""
        text = html.escape(data.show_token(a["text"]))
        chips.append(f'<span class="rv-attr" title="#{a["index"]}: {a["attribution"]:+.4f}" '
                     f'style="background:rgba({rgb},{abs(share):.3f});{outline}padding:1px 3px;'
                     f'margin:1px;border-radius:3px;display:inline-block;'
                     f'font-family:monospace">{text}</span>')
    return f'<div class="rv-explain" style="line-height:1.9">{"".join(chips)}</div>'


def _overlay(handle, run, example, result: dict):
    """The example's image (in grey) with each patch tinted by its attribution (red up,
    blue down); the target patch outlined."""
    from PIL import Image, ImageDraw

    info = query(handle, lambda s: s.example_info(run, int(example)))
    if not info.get("image"):
        st.info("The image was not stored; no overlay to draw.")
        return None
    from routeviz.runs.inputs import at_aspect, original_size

    stored = Image.open(io.BytesIO(bytes(info["image"])))
    image = stored.convert("L").convert("RGBA")  # in grey, so the tint reads on any colour
    rows, cols = result["input"]["grid"]
    scores = np.array([a["attribution"] for a in result["attributions"]]).reshape(rows, cols)
    share = np.clip(scores / colour_scale(result), -1.0, 1.0)
    tint = np.zeros((rows, cols, 4), dtype=np.uint8)  # [rows, cols, rgba]
    tint[..., 0] = np.where(share >= 0, 214, 31)
    tint[..., 1] = np.where(share >= 0, 39, 119)
    tint[..., 2] = np.where(share >= 0, 40, 180)
    tint[..., 3] = (np.abs(share) * 170).astype(np.uint8)
    scale = max(1, OVERLAY_PX // max(image.size))
    size = (image.size[0] * scale, image.size[1] * scale)
    image = image.resize(size, Image.NEAREST)
    layer = Image.fromarray(tint, "RGBA").resize(size, Image.NEAREST)
    drawn = Image.alpha_composite(image, layer)
    row, col = divmod(int(result["target"]["token"]), cols)
    w, h = size[0] / cols, size[1] / rows
    ImageDraw.Draw(drawn).rectangle([col * w, row * h, (col + 1) * w - 1, (row + 1) * h - 1],
                                    outline=(0, 0, 0, 255), width=max(2, scale))
    drawn = at_aspect(drawn, original_size(stored))  # a 4:3 photo drawn 4:3
    buf = io.BytesIO()
    drawn.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()
