"""`streamlearn report`: a static HTML page with PNG plots of an evaluation and its training run."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from streamlearn.core import console
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.corpus.verdict import forgetting_line, headline
from streamlearn.core.files import atomic_write_text
from streamlearn.core.paths import contained
from streamlearn.corpus.status import corpus_status

SMOKE_NOTES = {
    "tiny": "The tiny preset is a smoke-scale model (a 39M-parameter Qwen2.5-VL of the real architecture with random "
            "initial weights, trained on CPU): these numbers show that the loop measures learning, not what a real "
            "model learns.",
    "smol": "The smol preset is a smoke-scale model: SmolLM2-135M-Instruct (pretrained, so Day-0 reads and answers "
            "in English) as the language model of a Qwen2.5-VL with a small random vision tower, trained on CPU for "
            "minutes. These numbers show what the protocol measures, not what a real model learns.",
}
REAL_RUN = " A real run trains Qwen2.5-VL-7B or -32B (bf16, fp32 Adam, FSDP) on GPUs; see the README runbook."


def sparse_text(results: dict) -> str:
    """Which systems ran at fewer checkpoints than the others (an expensive system in a long run)."""
    every = results["checkpoints"]
    fewer = {s: c for s, c in (results.get("checkpoints_by_system") or {}).items() if len(c) < len(every)}
    return "".join(f"; {escape(s)} only at {', '.join(c)}" for s, c in fewer.items())


def _plots(results: dict, metrics: list[dict], out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    files = {}
    hyp = [r for r in results.get("verdict", []) if r["system"] == "weights" and "diff" in r
           and r["scoring"] == results.get("mc_scoring") and r["group"] in ("transfer", "placebo")]
    if hyp:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for k, (group, color) in enumerate((("transfer", "tab:blue"), ("placebo", "tab:gray"))):
            rs = sorted((r for r in hyp if r["group"] == group), key=lambda r: r["day"])
            if not rs:
                continue
            x = np.array([r["day"] for r in rs], dtype=float) + (k - 0.5) * 0.12
            y = np.array([r["diff"] for r in rs]) * 100
            err = [y - np.array([r["diff_low"] for r in rs]) * 100, np.array([r["diff_high"] for r in rs]) * 100 - y]
            ax.errorbar(x, y, yerr=err, fmt="o-", capsize=3, color=color, label=group)
            for xi, yi, r in zip(x, y, rs):
                ax.annotate(f"n={r['n']}", (xi, yi), textcoords="offset points", xytext=(6, 4), fontsize=7)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xlabel("Day-N checkpoint")
        ax.set_ylabel("Day-N minus Day-0, points (95% CI)")
        ax.set_title("weights: held-out facts of trained (transfer) and untrained days (placebo)", fontsize=9)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "hypothesis_weights.png", dpi=110)
        plt.close(fig)
        files["The hypothesis: transfer and placebo against Day-N, weights"] = "hypothesis_weights.png"
    acc = [r for r in results["accuracy"] if r["category"] != "all"]
    ckpts = results["checkpoints"]
    first, last = ckpts[0], ckpts[-1]
    for system in sorted({r["system"] for r in acc}):
        rows = [r for r in acc if r["system"] == system and r["checkpoint"] in (first, last)]
        cats = sorted({r["category"] for r in rows})
        if not cats:
            continue
        fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(cats)), 3.2))
        for k, ck in enumerate(sorted({r["checkpoint"] for r in rows}, key=ckpts.index)):
            vals = {r["category"]: r for r in rows if r["checkpoint"] == ck}
            x = np.arange(len(cats)) + (k - 0.5) * 0.38
            y = [vals[c]["accuracy"] if c in vals else np.nan for c in cats]
            lo = [vals[c]["accuracy"] - vals[c]["ci_low"] if c in vals else 0 for c in cats]
            hi = [vals[c]["ci_high"] - vals[c]["accuracy"] if c in vals else 0 for c in cats]
            bars = ax.bar(x, y, 0.36, yerr=[lo, hi], capsize=3, label=ck)
            for b, c in zip(bars, cats):
                if c in vals:
                    ax.text(b.get_x() + b.get_width() / 2, 0.02, f"n={vals[c]['n']}", ha="center", fontsize=7,
                            rotation=90, color="w")
        ax.set_xticks(np.arange(len(cats)), cats, rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("accuracy (95% CI)")
        drawn = sorted({r["checkpoint"] for r in rows}, key=ckpts.index)
        ax.set_title(f"{system}: {' vs '.join(drawn)}, every item pooled (memorised, transfer, placebo, flagged)",
                     fontsize=9)
        ax.legend()
        fig.tight_layout()
        name = f"accuracy_{system}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files[f"Accuracy by category, {system}: every item pooled, not the verdict"] = name
    for system, days in results.get("retention", {}).items():
        dlist = sorted(days, key=float)
        grid = np.array([[days[d].get(c, np.nan) for c in ckpts] for d in dlist], dtype=float)
        if grid.size == 0:
            continue
        fig, ax = plt.subplots(figsize=(1.2 * len(ckpts) + 2, 0.6 * len(dlist) + 1.6))
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(ckpts)), ckpts)
        ax.set_yticks(range(len(dlist)), [f"day {d}" for d in dlist])
        ax.set_xlabel("checkpoint")
        ax.set_ylabel("evidence day")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.0%}", ha="center", va="center", color="w", fontsize=8)
        fig.colorbar(im, ax=ax, label="accuracy")
        ax.set_title(f"retention, {system}")
        fig.tight_layout()
        name = f"retention_{system}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files[f"Retention (evidence day x checkpoint), {system}"] = name
    if metrics:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot([m["step"] for m in metrics], [m["loss"] for m in metrics], lw=1)
        for m in metrics:
            if m["day_step"] == 1:
                ax.axvline(m["step"], color="grey", lw=0.5, ls=":")
        ax.set_xlabel("step (dotted: a new day)")
        ax.set_ylabel("training loss")
        fig.tight_layout()
        fig.savefig(out / "train_loss.png", dpi=110)
        plt.close(fig)
        files["Training loss"] = "train_loss.png"
    return files


def run_report(corpus: Corpus, name: str | None = None) -> Path:
    cfg = corpus.config.eval
    name = name or f"{cfg.run}-{cfg.bank}"
    ev = contained(corpus.folder("evals"), name)
    if not (ev / "results.json").exists():
        root = corpus.folder("evals")
        have = sorted(r.parent.name for r in root.glob("*/results.json")) if root.is_dir() else []
        raise StreamlearnError(f"no evaluation {name!r}; " + (f"evaluations here: {', '.join(have)} (pass --name NAME)"
                                                              if have else "run `streamlearn eval` first"))
    results = json.loads((ev / "results.json").read_text())
    mpath = corpus.run_dir(results["run"]) / "metrics.jsonl"
    metrics = [json.loads(x) for x in mpath.read_text().splitlines()] if mpath.exists() else []
    out = ev / "report"
    out.mkdir(exist_ok=True)
    plots = _plots(results, metrics, out)
    status = corpus_status(corpus)
    rows = "".join(f"<tr><td>{escape(r['system'])}</td><td>{escape(r['checkpoint'])}</td><td>{escape(r['category'])}"
                   f"</td><td>{r['n']}</td><td>{r['accuracy']:.1%}</td><td>[{r['ci_low']:.1%}, {r['ci_high']:.1%}]</td>"
                   f"</tr>" for r in results["accuracy"])
    order = {s: k for k, s in enumerate(("weights", "video", "openai", "rag"))}
    ck_order = {c: k for k, c in enumerate(results["checkpoints"])}
    group_order = {g: k for k, g in enumerate(("transfer", "placebo", "memorised"))}
    ranked = sorted(results.get("verdict", []), key=lambda r: (order.get(r["system"], 9), r["system"],
                                                               ck_order.get(r["checkpoint"], 99),
                                                               group_order.get(r["group"], 9)))
    main_rows = [r for r in ranked if r["scoring"] == results.get("mc_scoring")]
    other_rows = [r for r in ranked if r["scoring"] != results.get("mc_scoring")]
    def verdict_row(r: dict) -> str:
        return (
            f"<tr{' class=main' if r['system'] == 'weights' else ''}><td>{escape(r['system'])}</td>"
            f"<td>{escape(r['scoring'])}</td><td>{escape(r['checkpoint'])}</td><td>{escape(r['group'])}</td>"
            f"<td>{r['n']} / {r['n_clusters']}{' *' if r['few_clusters'] else ''}</td>"
            f"<td>{r['accuracy']:.1%} [{r['ci_low']:.1%}, {r['ci_high']:.1%}]</td>"
            + (f"<td>{r['base_accuracy']:.1%}</td><td>{r['diff']:+.1%} [{r['diff_low']:+.1%}, {r['diff_high']:+.1%}]</td>"
               f"<td>{r['p']:.3g}</td><td>{r['p_holm']:.3g}</td>" if "diff" in r else "<td colspan=4>Day-0 reader</td>")
            + f"<td>{r['guesser']:.1%}</td></tr>")
    verdict = "".join(verdict_row(r) for r in main_rows)
    verdict_other = "".join(verdict_row(r) for r in other_rows)
    hyp_img = plots.pop("The hypothesis: transfer and placebo against Day-N, weights", None)
    ungraded = results.get("ungraded") or {}
    ungraded_text = ("Every answer was graded." if not any(ungraded.values()) else
                     "Answers that could not be graded: " + ", ".join(f"{v} {escape(str(k))}" for k, v in
                                                                      ungraded.items() if v) + ".")
    split = results.get("split") or {}
    contamination = results.get("contamination") or {}
    guesser = "".join(f"<tr><td>{escape(g['category'])}</td><td>{escape(g['split'])}</td><td>{g['n']}</td>"
                      f"<td>{g['accuracy']:.1%}</td></tr>" for g in results.get("guesser", []))
    d = status.get("describe") or {}
    steady = metrics[2:] or metrics
    cost = [("chunks described", d.get("chunks", 0)),
            ("describe tokens (prompt + completion)", f"{d.get('prompt_tokens', 0):,} + {d.get('completion_tokens', 0):,}"),
            ("describe cost (estimated)", f"${d.get('cost_usd', 0):.2f}"),
            ("training steps", len(metrics)),
            ("training tokens/s (mean)", f"{sum(m['tokens_per_s'] for m in steady) / len(steady):,.0f}" if steady else "-"),
            ("training MFU (mean)", f"{sum(m['mfu'] for m in steady) / len(steady):.2%}" if steady else "-"),
            ("training peak memory", f"{max(m['peak_mem_gib'] for m in metrics):.1f} GiB" if metrics else "-")]
    forget = results.get("forgetting") or {}
    fl = "".join(f"<tr><td>{escape(k)}</td><td>{v:.4f}</td><td>{(forget.get('relative_change') or {}).get(k, 0):+.1%}</td>"
                 f"</tr>" for k, v in (forget.get("general_loss") or {}).items())
    imgs = "".join(f"<figure><img src='{f}' alt='{escape(t)}'><figcaption>{escape(t)}</figcaption></figure>"
                   for t, f in plots.items())
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>streamlearn report</title><style>
body{{font:14px/1.45 system-ui,sans-serif;margin:20px;max-width:1100px;color:#222}} table{{border-collapse:collapse}}
td,th{{border-top:1px solid #ddd;padding:3px 8px;text-align:left}} img{{max-width:100%}} figure{{margin:12px 0}}
tr.main td{{font-weight:600}} #hypothesis-table td{{white-space:nowrap;padding:2px 7px}} .verdict{{font-size:16px;background:#eef5ff;border:1px solid #9bbcf0;padding:8px 12px;border-radius:4px}} .note{{background:#fff6d6;border:1px solid #e5c65c;padding:8px 12px;border-radius:4px}}</style></head><body>
<h1>{escape(corpus.config.corpus.subject)}: Day-0 vs Day-N</h1>
<p class="verdict" id="verdict"><b>Verdict:</b> {escape(headline(results))}</p>
<h2 id="hypothesis">The verdict: memorised, transfer, placebo ({escape(str(results.get('mc_scoring')))} MC rule)</h2>
<table id="hypothesis-table"><tr><th>system</th><th>MC rule</th><th>checkpoint</th><th>group</th><th>items / clusters</th>
<th>accuracy (95% CI)</th><th>Day-0</th><th>difference (95% CI)</th><th>p</th><th>Holm p</th><th>guesser</th></tr>
{verdict}</table>
<p><b>transfer</b> = held-out facts (never a target in any form; seen only in the description and the video) with
evidence on a trained day: the hypothesis; <b>placebo</b> = held-out facts whose evidence is after the
checkpoint's last trained day (should stay at the Day-0 level); <b>memorised</b> = facts whose QA pair was a
training target (never the verdict). <b>rag</b> is the Day-0 model reading what was described by Day-N (days
&le; N): what could be known by then, without training. Difference = Day-N &minus; Day-0 on the same items,
95% paired cluster-bootstrap CI (clusters = evidence chunks; a question and its paraphrase share one);
p = exact/permutation cluster sign-flip test, Holm-adjusted over the Day-N checkpoints. * fewer than 30
clusters: the interval is indicative only. {escape('F' + (forgetting_line(forget) or 'forgetting: not measured')[1:])}.</p>
{f"<figure><img src='{hyp_img}' alt='hypothesis'><figcaption>Transfer and placebo against Day-N (weights), with n</figcaption></figure>" if hyp_img else ""}
<p class="note">{escape(SMOKE_NOTES[results["model"]] + REAL_RUN) if results.get("model") in SMOKE_NOTES else
 "Model: " + escape(str(results.get("model")))}</p>
<p>Bank <b>{escape(results['bank'])}</b> ({results['items']} items, {'sealed' if results['bank_sealed'] else 'not sealed'}),
run <b>{escape(results['run'])}</b>, checkpoints {', '.join(results['checkpoints'])}, systems {', '.join(results['systems'])}{sparse_text(results)}.
{ungraded_text}</p>
<h2>The same groups under the other multiple-choice rule</h2>
<p>Multiple choice is scored by the rule fixed in the config (<b>{escape(str(results.get('mc_scoring')))}</b>, above);
this is the other rule, for comparison only.</p>
<table><tr><th>system</th><th>MC rule</th><th>checkpoint</th><th>group</th><th>items / clusters</th>
<th>accuracy (95% CI)</th><th>Day-0</th><th>difference (95% CI)</th><th>p</th><th>Holm p</th><th>guesser</th></tr>
{verdict_other}</table>
{imgs}
<h2>Accuracy by category, every item pooled (95% cluster-bootstrap CI, clusters = evidence chunks)</h2>
<p>Not the verdict: these pool memorised, transfer, placebo and flagged items.</p>
<table><tr><th>system</th><th>checkpoint</th><th>category</th><th>n</th><th>accuracy</th><th>95% CI</th></tr>{rows}</table>
<p>Every item with its group and each checkpoint's answer: <a href="items.html">items.html</a>.</p>
<h2>Held-out split</h2>
<p>{split.get('facts', '?')} facts, {split.get('facts_heldout', '?')} held out (including every fact of
{len(split.get('heldout_chunks', []))} whole chunks: {escape(', '.join(split.get('heldout_chunks', [])))}),
seed {split.get('seed', '?')}; bank items: {split.get('items_trained', 0)} QA-trained,
{split.get('items_heldout', 0)} held out; {split.get('dropped', 0)} generated items dropped as guessable or
without distractors.</p>
<h2>Contamination audit</h2>
<p>Every item against every target the run trained (question match, answer with its question, 8-/13-word
windows): {contamination.get('flagged', 0)} items flagged, {contamination.get('flagged_trained', 0)} of them
QA-trained (expected) and <b>{contamination.get('flagged_heldout', 0)} held out</b> (out of the verdict{': ' +
escape(', '.join(contamination.get('heldout_ids', []))) if contamination.get('heldout_ids') else ''}).
Flags: {escape(json.dumps(contamination.get('by_flag', {})))}.</p>
<h2>No-memory guesser</h2>
<p>Question, options and the stream's answer frequencies, no chunk: the floor any system must clear.</p>
<table><tr><th>category</th><th>split</th><th>items</th><th>expected accuracy</th></tr>{guesser}</table>
<h2>Forgetting check (general held-out set, mean answer loss)</h2>
<table><tr><th>checkpoint</th><th>loss</th><th>vs Day-0</th></tr>{fl}</table>
<p>Margin {forget.get('margin', 0):.0%}: {'within' if forget.get('within_margin') else 'EXCEEDED'}.</p>
<h2>Cost and throughput</h2>
<table>{''.join(f'<tr><td>{escape(str(k))}</td><td>{escape(str(v))}</td></tr>' for k, v in cost)}</table>
</body></html>"""
    items_page = item_page(corpus, results, ev)
    atomic_write_text(out / "items.html", items_page)
    atomic_write_text(out / "index.html", html)
    console.info(f"report: {corpus.rel(out / 'index.html')}")
    return out / "index.html"


def item_page(corpus: Corpus, results: dict, ev: Path) -> str:
    """One row per bank item (like lm-eval's logged samples): question, answer, its group at the last
    Day-N, and each system's answer at each checkpoint, right or wrong."""
    from streamlearn.corpus import questionbank as QB
    from streamlearn.corpus.heldout import group_of

    items = QB.load_bank(corpus, results["bank"])
    answers = [json.loads(x) for x in (ev / "answers.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    scoring = results.get("mc_scoring")
    got: dict[tuple[str, str], dict] = {(a["id"], f"{a['system']} {a['checkpoint']}"): a for a in answers}
    columns = list(dict.fromkeys(f"{a['system']} {a['checkpoint']}" for a in answers))
    last = max((results.get("checkpoint_days") or {"day0": 0}).values())
    flagged = set((results.get("contamination") or {}).get("heldout_ids") or [])

    def cell(a: dict | None) -> str:
        if a is None:
            return "<td></td>"
        ok = a.get(f"correct_{scoring}", a.get("correct"))
        mark = "&#10003;" if ok else "&#10007;" if ok is not None else "?"
        return f"<td class='{'ok' if ok else 'no'}'>{mark} {escape(str(a.get('response', ''))[:80])}</td>"

    rows = "".join(
        f"<tr id='{escape(i['id'])}'><td>{escape(i['id'])}</td><td>{escape(group_of(i, i['id'] in flagged, last) or '-')}"
        f"</td><td>{escape(str(i.get('evidence_day')))}</td><td>{escape(i['question'])}</td><td>{escape(i['answer'])}</td>"
        + "".join(cell(got.get((i["id"], c))) for c in columns) + "</tr>" for i in items)
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    return (f"""<!doctype html><html><head><meta charset="utf-8"><title>streamlearn items</title><style>
body{{font:13px/1.4 system-ui,sans-serif;margin:16px}} table{{border-collapse:collapse}} td,th{{border-top:1px solid
#ddd;padding:2px 6px;text-align:left;vertical-align:top}} td.ok{{color:#176b2c}} td.no{{color:#a3261b}}</style></head>
<body><h1>{escape(results['bank'])}: {len(items)} items, run {escape(results['run'])}</h1>
<p>Group at day {last} (transfer = held out with evidence on a trained day; placebo = held out, evidence later;
memorised = its QA pair was trained). Multiple choice scored by the <b>{escape(str(scoring))}</b> rule.
<a href="index.html">Back to the report</a>.</p>
<table><tr><th>id</th><th>group</th><th>evidence day</th><th>question</th><th>answer</th>{head}</tr>{rows}</table>
</body></html>""")
