"""`streamlearn plan`: the token budget of operating points, exact and by the seed's rule of thumb."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from streamlearn.media import vision_budget
from streamlearn.core.config import OperatingPoint
from streamlearn.core.errors import StreamlearnError
from streamlearn.models.presets import PRESETS, preset_geometry


def geometry_for(model: str | None) -> vision_budget.VisionGeometry:
    if model in PRESETS:
        return preset_geometry(model)
    if not model or model.lower().startswith(("qwen/qwen2.5-vl", "qwen/qwen2-vl")):
        return vision_budget.PRESET_GEOMETRY["qwen2.5-vl"]
    if model.lower().startswith("qwen/qwen3-vl"):
        return vision_budget.PRESET_GEOMETRY["qwen3-vl"]
    path = Path(model).expanduser()
    if (path / "config.json").exists():
        cfg = json.loads((path / "config.json").read_text())
        return vision_budget.geometry_from_config(cfg.get("vision_config", cfg))
    try:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(model).to_dict()
    except Exception as exc:  # noqa: BLE001 - offline, or not a model
        raise StreamlearnError(f"cannot read the vision geometry of {model!r} ({type(exc).__name__}); pass a local "
                               f"model folder or a preset: {', '.join(sorted(PRESETS))}") from None
    return vision_budget.geometry_from_config(cfg.get("vision_config", cfg))


def plan_table(op: OperatingPoint, chunk_seconds: list[float], fps: list[float], width: int, height: int,
               source_fps: float, model: str | None) -> list[dict]:
    g = geometry_for(model)
    rows = []
    from streamlearn.core.config import ConfigError

    for cs in chunk_seconds:
        for f in fps:
            try:
                point = replace(op, chunk_seconds=cs, fps=f)
            except ConfigError as exc:  # a flag's value, not the config file: say which flag
                flag = "--chunk-seconds" if "chunk_seconds" in str(exc) else "--fps"
                raise StreamlearnError(f"plan: {flag} {cs if flag == '--chunk-seconds' else f:g}: "
                                       f"{str(exc).split(' ', 2)[2]}") from None
            p = vision_budget.plan(cs, width, height, point, g, source_fps=source_fps)
            rule = vision_budget.rule_of_thumb(cs, f)
            rows.append({"chunk_seconds": cs, "fps": f, **p.to_dict(), "max_frames": point.max_frames,
                         "rule_pairs": rule["pairs"],
                         "rule_pixels_per_pair": round(rule["pixels_per_pair"]),
                         "rule_frame_side": round(rule["frame_side"], 1)})
    return rows


def format_table(rows: list[dict]) -> str:
    head = (f"{'chunk_s':>8} {'fps':>9} {'frames':>7} {'pairs':>6} {'frame HxW':>10} {'tok/pair':>8} "
            f"{'vision tok':>10} {'s/grid':>7} | {'rule: pairs':>11} {'px/pair':>9} {'side':>6}")
    lines = [head]
    capped = []
    for r in rows:
        # fps is what was asked, and when max_frames caps the frames, what is sampled ("2->1")
        fps = f"{r['fps']:g}" if abs(r["sample_fps"] - r["fps"]) < 1e-9 else f"{r['fps']:g}->{r['sample_fps']:.3g}"
        if fps != f"{r['fps']:g}" and r["n_frames"] >= r["max_frames"]:
            capped.append(f"at {r['chunk_seconds']:g} s, --fps {r['fps']:g} asks for "
                          f"{r['chunk_seconds'] * r['fps']:.0f} frames; operating_point.max_frames caps them at "
                          f"{r['max_frames']}, so frames are sampled at {r['sample_fps']:.3g} fps (raise "
                          "--max-frames or lower --fps)")
        lines.append(f"{r['chunk_seconds']:>8g} {fps:>9} {r['n_frames']:>7} {r['pairs']:>6} "
                     f"{str(r['frame_height']) + 'x' + str(r['frame_width']):>10} {r['tokens_per_pair']:>8} "
                     f"{r['vision_tokens']:>10,} {r['seconds_per_grid']:>7g} | {r['rule_pairs']:>11g} "
                     f"{r['rule_pixels_per_pair']:>9,} {r['rule_frame_side']:>6g}")
    lines.append("left: what the model's processor produces at this operating point (streamlearn's training path); "
                 "right: the seed's rule of thumb (pairs = chunk_s*fps/2, pixels/pair = 25.2M/pairs, ~12-14K tokens).")
    lines += [f"note: {c}" for c in capped]
    return "\n".join(lines)


def plan_command(corpus, model: str | None, chunk_seconds: list[float], fps: list[float], size: tuple[int, int],
                 source_fps: float, as_json: bool = False, forecast: bool = False, **budget) -> str:
    """`streamlearn plan`: the corpus's operating point (or the default one) with `budget` overrides; with
    `forecast`, what the corpus's run will write."""
    from streamlearn.core.config import ConfigError
    from streamlearn.corpus.layout import Corpus

    if forecast:
        if not corpus:
            raise StreamlearnError("plan --forecast needs the corpus: `streamlearn plan CORPUS --forecast`")
        from streamlearn.corpus import forecast as F

        c = Corpus.open(corpus)
        cfg = c.config.train if not model else replace(c.config.train, model=model)
        f = F.forecast(c, cfg)
        return json.dumps(f, indent=1) if as_json else F.format_forecast(f)

    op = Corpus.open(corpus).config.operating_point if corpus else OperatingPoint()
    try:
        op = replace(op, **{k: v for k, v in budget.items() if v is not None})
    except ConfigError as exc:
        raise StreamlearnError(f"plan: {str(exc).split(': ', 1)[1]}; pass a larger value") from None
    rows = plan_table(op, list(chunk_seconds) or [op.chunk_seconds], list(fps) or [op.fps], *size, source_fps, model)
    return json.dumps(rows, indent=1) if as_json else format_table(rows)
