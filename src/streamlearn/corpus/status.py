"""Per-stage counts (done / failed / skipped / pending), hours and bytes, and the reasons of the
failed rows (something went wrong: fix and re-run) apart from the skipped ones (the stage does not
apply, e.g. no audio to transcribe: nothing to do)."""

from __future__ import annotations

from streamlearn.core.redact import redact
from streamlearn.corpus.verdict import headline
from streamlearn.corpus.layout import Corpus
from streamlearn.core.manifest import DONE, FAILED, SKIPPED, status_of


def _hours(row: dict) -> float:
    return float(row.get("duration_s") or row.get("probe_duration_s") or 0.0) / 3600.0


def corpus_status(corpus: Corpus) -> dict:
    report: dict = {"corpus": str(corpus.root), "subject": corpus.config.corpus.subject,
                    "stages": [], "failed": [], "skipped": [], "warnings": []}
    for manifest, bytes_col in ((corpus.videos, {"download": "media_bytes"}), (corpus.chunks, {})):
        rows = manifest.read()
        table = manifest.table
        report[table.name] = {"rows": len(rows), "hours": round(sum(_hours(r) for r in rows), 4),
                              "bytes": sum(int(r.get("media_bytes") or r.get("bytes") or 0) for r in rows)}
        for stage in table.stages:
            counts = {"done": 0, "failed": 0, "skipped": 0, "pending": 0}
            hours = 0.0
            nbytes = 0
            for r in rows:
                st = status_of(r, stage)
                counts[st] += 1
                if st == DONE:
                    hours += _hours(r)
                    nbytes += int(r.get(bytes_col.get(stage, "bytes")) or 0)
                elif st in (FAILED, SKIPPED):
                    report["failed" if st == FAILED else "skipped"].append(
                        {"table": table.name, "id": r[table.key], "stage": stage,
                         "error": r.get(f"{stage}_error") or "(no reason recorded)"})
            if stage in OPTIONAL and counts["pending"] == len(rows):
                continue  # a stage only some recipes use, never run here: not work left to do
            report["stages"].append({"table": table.name, "stage": stage, **counts,
                                     "hours": round(hours, 4), "bytes": nbytes})
    chunk_rows = corpus.chunks.read()
    report["problems"] = integrity_problems(corpus, chunk_rows)
    report["training"] = training_status(corpus)
    report["evals"] = eval_status(corpus)
    described = [r for r in chunk_rows if r.get("describe_status") == DONE]
    report["describe"] = {"chunks": len(described),
                          "prompt_tokens": sum(int(r.get("prompt_tokens") or 0) for r in described),
                          "completion_tokens": sum(int(r.get("completion_tokens") or 0) for r in described),
                          "cost_usd": round(sum(float(r.get("cost_usd") or 0) for r in described), 4)}
    mtime = [r["video_id"] for r in corpus.videos.read() if r.get("start_source") == "file_mtime"]
    if mtime:
        report["warnings"].append(f"{len(mtime)} videos take their start time from the file's modification time "
                                  f"(e.g. {mtime[0]}), not from the recording; check release_timestamp in videos.csv")
    no_time = [r["chunk_id"] for r in chunk_rows if not r.get("start_utc")]
    if no_time:
        report["warnings"].append(f"{len(no_time)} chunks have no real-world start time "
                                  f"(e.g. {no_time[0]}); set release_timestamp in videos.csv and re-chunk")
    return report


# stages a corpus needs only for some training recipes (`rewrite`: train.targets "rewrites"); status lists
# them once they have run on some row
OPTIONAL = ("rewrite",)


def integrity_problems(corpus: Corpus, chunk_rows: list[dict]) -> list[str]:
    """Cheap checks from the manifests alone (`streamlearn chunk --verify` also reads every object)."""
    problems = []
    for r in corpus.videos.read():
        if status_of(r, "download") == DONE and r.get("integrity") not in ("ok", "no_reference", None):
            problems.append(f"videos/{r['video_id']}: integrity {r['integrity']}")
    by_video: dict[str, list[dict]] = {}
    for r in chunk_rows:
        by_video.setdefault(r["video_id"], []).append(r)
    videos = corpus.videos.rows_by_key()
    for vid, rows in by_video.items():
        rows.sort(key=lambda r: r["chunk_index"])
        if [r["chunk_index"] for r in rows] != list(range(len(rows))) or any(r["n_chunks"] != len(rows) for r in rows):
            problems.append(f"chunks/{vid}: n_chunks or chunk indexes inconsistent")
        src = (videos.get(vid) or {}).get("probe_duration_s")
        covered = sum(r["duration_s"] or 0 for r in rows)
        if src and abs(covered - src) > 0.1:
            problems.append(f"chunks/{vid}: chunks cover {covered:.2f} s of {src:.2f} s")
    qdir = corpus.folder("questions")
    for seal in sorted(qdir.glob("*.seal.json")) if qdir.exists() else []:
        bank = seal.with_name(seal.name[:-len(".seal.json")] + ".jsonl")
        import hashlib
        import json

        want = json.loads(seal.read_text())["sha256"]
        if not bank.exists() or hashlib.sha256(bank.read_bytes()).hexdigest() != want:
            problems.append(f"questions/{bank.name}: changed since it was sealed")
    return problems


def training_status(corpus: Corpus) -> list[dict]:
    import json

    out = []
    for run in sorted(corpus.folder("runs").glob("*")) if corpus.folder("runs").exists() else []:
        ckpts = sorted(p.name for p in (run / "checkpoints").glob("*") if (p / "progress.json").exists())
        latest = max(((json.loads((run / "checkpoints" / c / "progress.json").read_text()), c) for c in ckpts),
                     key=lambda x: x[0]["step"], default=(None, None))
        exports = sorted(p.name for p in (run / "export").glob("day-*") if (p / "config.json").exists())
        out.append({"run": run.name, "steps": latest[0]["step"] if latest[0] else 0,
                    "completed_days": latest[0]["completed_days"] if latest[0] else [],
                    "checkpoints": ckpts, "exports": exports})
    return out


def eval_status(corpus: Corpus) -> list[dict]:
    import json

    out = []
    for res in sorted(corpus.folder("evals").glob("*/results.json")) if corpus.folder("evals").exists() else []:
        r = json.loads(res.read_text())
        acc = [a for a in r.get("accuracy", []) if a["category"] == "all"]
        out.append({"name": res.parent.name, "bank": r.get("bank"), "items": r.get("items"),
                    "verdict": headline(r),
                    "accuracy": {f"{a['system']}/{a['checkpoint']}": round(a["accuracy"], 4) for a in acc}})
    return out


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n} B"


def format_status(report: dict) -> str:
    lines = [f"corpus {report['corpus']} (subject: {report['subject']})",
             f"videos: {report['videos']['rows']} rows, {report['videos']['hours']:.2f} h, "
             f"{human_bytes(report['videos']['bytes'])}; chunks: {report['chunks']['rows']} rows, "
             f"{report['chunks']['hours']:.2f} h, {human_bytes(report['chunks']['bytes'])}",
             f"{'stage':<20}{'done':>7}{'failed':>8}{'skipped':>9}{'pending':>9}{'hours':>9}{'bytes':>12}"]
    for s in report["stages"]:
        lines.append(f"{s['table'] + '/' + s['stage']:<20}{s['done']:>7}{s['failed']:>8}{s['skipped']:>9}"
                     f"{s['pending']:>9}{s['hours']:>9.2f}{human_bytes(s['bytes']):>12}")
    if report["failed"]:
        lines.append("failed (fix the cause, then re-run the stage):")
        lines += [f"  {f['table']}/{f['id']} {f['stage']}: {f['error']}" for f in report["failed"]]
    if report.get("skipped"):
        lines.append("skipped (the stage does not apply; nothing to do):")
        lines += [f"  {f['table']}/{f['id']} {f['stage']}: {f['error']}" for f in report["skipped"]]
    for t in report.get("training", []):
        lines.append(f"train {t['run']}: {t['steps']} steps, days done {t['completed_days']}, "
                     f"exports {', '.join(t['exports']) or 'none'}")
    for e in report.get("evals", []):
        # the verdict, not the all-items accuracy (which QA-trained items can move while transfer does not)
        lines.append(f"eval {e['name']}: {e['items']} items; {e['verdict']}")
    lines += [f"PROBLEM: {p}" for p in report.get("problems", [])]
    d = report.get("describe") or {}
    if d.get("chunks"):
        lines.append(f"describe: {d['chunks']} chunks, {d['prompt_tokens']:,} prompt + {d['completion_tokens']:,} "
                     f"completion tokens, ${d['cost_usd']:.2f} estimated")
    lines += [f"warning: {w}" for w in report["warnings"]]
    return "\n".join(lines)


def status_command(corpus: Corpus, as_json: bool = False) -> int:
    """Print the report; 1 when an integrity check failed (scripts and CI see it in the exit status)."""
    import json

    report = corpus_status(corpus)
    # a manifest written by an older streamlearn may hold a secret in a failure reason: never print it
    print(redact(json.dumps(report, indent=1) if as_json else format_status(report)))
    return 1 if report["problems"] else 0  # 2 is click's code for a usage error
