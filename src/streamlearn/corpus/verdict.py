"""The verdict in words, read from an evaluation's results (`results.json`): what `streamlearn eval` prints
at the end (also under --quiet), the report's first line and the `status` line of each evaluation. One
plain sentence first, then each group with its Day-0 difference, interval and p, the guesser, RAG, the
audit and the forgetting check."""

from __future__ import annotations


def sentence(transfer: dict | None, placebo: dict | None, forgetting: dict) -> str:
    """One sentence a reader can quote: did Day-N learn held-out facts, did the placebo move, did it forget."""
    if not transfer:
        out = "No held-out items with evidence on a trained day were scored: there is no verdict on transfer"
    elif "diff" not in transfer:
        out = "day0 was not evaluated with the other checkpoints: there is no verdict (add day0 to --checkpoints)"
    else:
        d = f"{transfer['diff'] * 100:+.0f} points [{transfer['diff_low'] * 100:+.0f}, {transfer['diff_high'] * 100:+.0f}]"
        if transfer["p_holm"] < 0.05 and transfer["diff"] > 0:
            out = (f"{transfer['checkpoint']} answers held-out facts of the trained days better than day0 ({d}, "
                   f"Holm p {transfer['p_holm']:.2g})")
        else:
            out = (f"No evidence that {transfer['checkpoint']} answers held-out facts better than day0 ({d}, "
                   f"Holm p {transfer['p_holm']:.2g})")
    if placebo and "diff" in placebo and transfer and "diff" in transfer:
        moved = placebo["p"] < 0.05
        out += (f"; the placebo {'moved' if moved else 'did not move'} ({placebo['diff'] * 100:+.0f} points, "
                f"p {placebo['p']:.2g})")
    if forgetting.get("relative_change"):
        out += "; " + ("general ability held" if forgetting.get("within_margin") else "general ability fell beyond "
                       "the margin")
    return out + "."


def headline(results: dict) -> str:
    """The sentence for an evaluation: the weights' transfer at the last Day-N, its placebo, forgetting."""
    rows = [r for r in results.get("verdict", []) if r["scoring"] == results.get("mc_scoring")
            and r["system"] == "weights"]
    if not rows:
        return (f"No verdict from the weights in this evaluation (systems: {', '.join(results.get('systems') or [])}); "
                "the report gives each system's accuracy.")
    last = max((r["day"] for r in rows), default=None)
    transfer = next((r for r in rows if r["group"] == "transfer" and r["day"] == last), None)
    placebo = max((r for r in rows if r["group"] == "placebo"), key=lambda r: r["n"], default=None)
    return sentence(transfer, placebo, results.get("forgetting") or {})


def forgetting_line(forgetting: dict) -> str | None:
    change = forgetting.get("relative_change") or {}
    if not change:
        return None
    last = max(change, key=lambda k: int(k[3:]) if k[3:].isdigit() else -1)
    verdict = "PASS" if forgetting.get("within_margin") else "EXCEEDED"
    worst = max(change.values())
    return (f"forgetting: general-set loss {change[last] * 100:+.1f}% at {last} over day0 (worst "
            f"{worst * 100:+.1f}%; margin {forgetting.get('margin', 0) * 100:.0f}%): {verdict}")


def verdict(results: dict) -> list[str]:
    """The verdict: one sentence, then memorised, transfer, placebo, guesser, RAG, audit and forgetting,
    never one number."""
    rows = [r for r in results.get("verdict", []) if r["scoring"] == results.get("mc_scoring")]
    last = max((r["day"] for r in rows), default=None)

    def row(system, group, day):
        return next((r for r in rows if (r["system"], r["group"], r["day"]) == (system, group, day)), None)

    def paired(r) -> str:
        if "diff" not in r:  # day0 was not evaluated with it
            return (f"{r['checkpoint']} {r['accuracy']:.0%}, {r['n']} items (no day0 in this evaluation to compare "
                    "with: add day0 to --checkpoints)")
        return (f"day0 {r['base_accuracy']:.0%} -> {r['checkpoint']} {r['accuracy']:.0%}, difference "
                f"{r['diff']:+.0%} [{r['diff_low']:+.0%}, {r['diff_high']:+.0%}], p={r['p']:.2g} (Holm "
                f"{r['p_holm']:.2g}), {r['n']} items in {r['n_clusters']} chunks")

    lines = ["[verdict] " + headline(results)]
    t = row("weights", "transfer", last)
    placebo = [r for r in rows if r["system"] == "weights" and r["group"] == "placebo"]
    if t:
        lines.append(f"[verdict] transfer (held-out facts, the hypothesis), from the weights: {paired(t)}")
    m = row("weights", "memorised", last)
    if m:
        lines.append(f"[verdict] memorised (facts trained as QA, not the verdict): {paired(m)}")
    if placebo:
        p = max(placebo, key=lambda r: r["n"])
        lines.append(f"[verdict] placebo (evidence after {p['checkpoint']}'s last day; should not move): {paired(p)}")
    if t:
        lines.append(f"[verdict] no-memory guesser on the same held-out items: {t['guesser']:.0%}")
    rag = row("rag", "transfer", last)
    if rag:
        lines.append(f"[verdict] rag (Day-0 reader retrieving from descriptions of days <= {last}) on them: "
                     f"{rag['accuracy']:.0%} "
                     f"[{rag['ci_low']:.0%}, {rag['ci_high']:.0%}]")
    c = results.get("contamination") or {}
    few = any(r["few_clusters"] for r in rows)
    lines.append(f"[verdict] audit: {c.get('flagged_trained', 0)} QA-trained and {c.get('flagged_heldout', 0)} "
                 "held-out items found in the training targets (held-out ones are out of the verdict)"
                 + ("; fewer than 30 evidence chunks: the intervals are indicative only" if few else ""))
    f = forgetting_line(results.get("forgetting") or {})
    if f:
        lines.append(f"[verdict] {f}")
    return lines
