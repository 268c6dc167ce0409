"""Exports (src/streamlearn/export/): exactly the samples training takes, never a held-out question;
each format read back by its own library where it installs here (datasets, webdataset, lmms-eval);
media paths relative to a root; every wrong usage refused before anything is written.

Run: python -m pytest tests/test_export.py -q
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile

import numpy as np
import pytest
from conftest import downloaded_tour
from trainkit import make_train_corpus

from streamlearn.corpus import heldout as H
from streamlearn.corpus import questionbank as QB
from streamlearn.core.config import load_train_config
from streamlearn.evaluate import bank as B
from streamlearn.corpus.runrecord import read_targets
from streamlearn.corpus.targets import build_specs
from streamlearn.core.textnorm import normalize

TRAINING_FORMATS = ("llava", "sharegpt", "hf", "webdataset")
# every QA kind a target: held-out pairs would leak through qa and qa_text if the split were not honoured
ALL_KINDS = {"lr": 1e-3, "warmup_steps": 1, "require_sealed_bank": True,
             "targets": ["description", "facts", "paraphrase", "qa", "qa_text", "day_summary"], "fact_variants": 2}


@pytest.fixture(scope="module")
def sealed(tmp_path_factory):
    corpus = make_train_corpus(tmp_path_factory.mktemp("exp") / "c", days=2, chunks_per_day=3, signs=3,
                               train=ALL_KINDS)
    B.run_questions(corpus, "main", do_seal=True)
    return corpus


def exported_text(folder) -> str:
    """Every text an export holds, whatever its format (JSON, parquet rows, tar members)."""
    import datasets

    parts = []
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".json", ".jsonl", ".md"):
            parts.append(path.read_text(encoding="utf-8"))
        elif path.suffix == ".tar":
            with tarfile.open(path) as tar:
                parts += [tar.extractfile(m).read().decode() for m in tar.getmembers() if not m.name.endswith(".npy")]
    if (folder / "data").is_dir():
        parts += [" ".join(map(str, r.values())) for r in datasets.load_dataset(str(folder), split="train")]
    return normalize("\n".join(parts))


def test_no_format_carries_a_heldout_question_and_each_carries_every_sample(sealed, run_cli):
    items = QB.load_bank(sealed, "main")
    held = [i for i in items if i["split"] == H.HELDOUT]
    trained = [i for i in items if i["split"] == H.TRAINED and i["variant"] == "original"]
    assert held and trained
    by_day, _ = build_specs(sealed, load_train_config(sealed.config.train), None,
                            H.load_constraints(sealed.root / "questions"))
    plan = sorted(s.key for d in by_day.values() for s in d)
    for fmt in TRAINING_FORMATS:
        res = run_cli("export", sealed.root, "--format", fmt)
        assert res.exit_code == 0, res.output
        folder = sealed.root / "exports" / fmt
        text = exported_text(folder)
        leaked = [i["id"] for i in held if normalize(i["question"]) in text]
        assert leaked == [], (fmt, leaked)
        # the control: QA-trained questions are there, so the search would have found a held-out one
        assert all(normalize(i["question"]) in text for i in trained), fmt
        manifest = json.loads((folder / "export.json").read_text())
        assert manifest["protected"] and manifest["samples"] == len(plan)
        audit = json.loads((folder / "audit.json").read_text())["banks"]["main"]
        assert audit["flagged_trained"] > 0 and manifest["audit_heldout_flagged"] == audit["flagged_heldout"]
        # no held-out item in question form; an 8-word window shared with a day-1 question of the same clock
        # time may flag one (eval counts it as contaminated), and the audit names it
        assert all(f["flags"] == ["ngram8"] for f in audit["heldout_flags"].values())
        assert "Held-out protection: on" in (folder / "README.md").read_text()
    keys = {"llava": [r["id"] for r in json.loads((sealed.root / "exports/llava/train.json").read_text())],
            "sharegpt": [r["key"] for r in json.loads((sealed.root / "exports/sharegpt/train.json").read_text())]}
    assert sorted(keys["llava"]) == sorted(keys["sharegpt"]) == plan  # text-only samples too, as text conversations


def test_a_planted_heldout_question_is_refused_by_every_format(sealed, tmp_path, run_cli):
    root = tmp_path / "c"
    shutil.copytree(sealed.root, root)
    shutil.rmtree(root / "exports", ignore_errors=True)
    held = next(i for i in QB.load_bank(sealed, "main") if i["split"] == H.HELDOUT and i["id"].startswith("q"))
    cid = held["evidence"]["chunk_ids"][0]
    path = root / "descriptions" / f"{cid}.json"
    doc = json.loads(path.read_text())
    doc["notable"].append(f"Someone asked: {held['question']} {held['answer']}")
    path.write_text(json.dumps(doc))
    for fmt in TRAINING_FORMATS:
        res = run_cli("export", root, "--format", fmt)
        assert res.exit_code == 1
        assert res.stderr.startswith(f"error: export would write a held-out question: target {cid}/description: item "
                                     f"{held['id']} of sealed bank 'main'"), res.stderr
        assert res.stderr.count("\n") == 1 and "nothing was written" in res.stderr
        assert not (root / "exports").exists() or not any((root / "exports").iterdir())


def test_without_a_sealed_bank_an_export_is_refused_or_says_it_is_unprotected(tmp_path, run_cli):
    corpus = make_train_corpus(tmp_path / "bare", days=1, chunks_per_day=2, signs=2,
                               train={**ALL_KINDS, "require_sealed_bank": False})
    res = run_cli("export", corpus.root, "--format", "sharegpt")
    assert res.exit_code == 1 and res.stderr.startswith("error: no sealed question bank: seal one before exporting "
                                                        "(`streamlearn questions CORPUS --seal`)")
    assert "pass --no-heldout-protection to export without one" in res.stderr
    res = run_cli("export", corpus.root, "--format", "sharegpt", "--no-heldout-protection")
    assert res.exit_code == 0, res.output
    folder = corpus.root / "exports/sharegpt"
    assert "Held-out protection: OFF" in (folder / "README.md").read_text()
    assert json.loads((folder / "export.json").read_text())["protected"] is False


@pytest.fixture(scope="module")
def trained(sealed, tmp_path_factory):
    """The sealed corpus trained for two days (tiny preset) and evaluated with the weights system."""
    from click.testing import CliRunner

    from streamlearn.cli import cli

    root = tmp_path_factory.mktemp("run") / "c"
    shutil.copytree(sealed.root, root)
    runner = CliRunner()
    res = runner.invoke(cli, ["train", str(root), "--config", str(write_fast(root))], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["eval", str(root), "--systems", "weights"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    from streamlearn.corpus.layout import Corpus

    return Corpus.open(root)


def write_fast(root):
    path = root / "fast.toml"
    path.write_text('[train]\ntargets = ["description", "qa_text"]\nstream_replay = 0.3\n')
    return path


def test_a_run_export_holds_exactly_the_targets_the_run_recorded(trained, run_cli):
    recorded = read_targets(trained.run_dir("main"))
    res = run_cli("export", trained.root, "--format", "hf", "--run", "main", "--out", trained.root / "exp-run")
    assert res.exit_code == 0, res.output
    import datasets

    ds = datasets.load_dataset(str(trained.root / "exp-run"), split="train")
    assert len(ds) == len(recorded)
    assert sorted(zip(ds["key"], ds["trained_on"])) == sorted((r["key"], r["trained_on"]) for r in recorded)
    assert set(ds["kind"]) == {"description", "qa_text"}
    res = run_cli("export", trained.root, "--format", "hf", "--run", "nope")
    assert res.exit_code == 1 and "run 'nope' recorded no training targets" in res.stderr


def test_lmms_eval_task_scores_like_streamlearn_eval(trained, run_cli):
    """The exported tasks load through lmms-eval's own TaskManager and, run with streamlearn's model on
    the Day-N checkpoint and on Day-0, give eval's per-group accuracies."""
    from lmms_eval import evaluator
    from lmms_eval.tasks import TaskManager

    res = run_cli("export", trained.root, "--format", "lmms-eval")
    assert res.exit_code == 0, res.output
    folder = trained.root / "exports/lmms-eval"
    tm = TaskManager("ERROR", include_path=str(folder), include_defaults=False)
    assert {"streamlearn_main_day1", "streamlearn_main_day2"} <= set(tm.all_tasks)
    results = json.loads((trained.root / "evals/main-main/results.json").read_text())
    rows = {(r["group"], r["scoring"]): r for r in results["verdict"] if r["system"] == "weights"
            and r["checkpoint"] == "day2"}
    cwd = os.getcwd()
    os.chdir(trained.root.parent)  # the task's data path is resolved against its YAML, not the working directory
    try:
        for ckpt, field in (("day-02", "accuracy"), ("day-00", "base_accuracy")):
            out = evaluator.simple_evaluate(model="streamlearn",
                                            model_args=f"pretrained={trained.root}/runs/main/export/{ckpt}",
                                            tasks=["streamlearn_main_day2"], task_manager=tm, device="cpu",
                                            log_samples=True, bootstrap_iters=0)
            got = out["results"]["streamlearn_main_day2"]
            for group in ("memorised", "transfer"):
                assert got[f"acc_{group},none"] == pytest.approx(rows[(group, "calibrated")][field], abs=0.02)
                assert got[f"acc_{group}_logprob,none"] == pytest.approx(rows[(group, "logprob")][field], abs=0.02)
            logged = [json.loads(s["target"]) for s in out["samples"]["streamlearn_main_day2"]]
            assert {"id", "group", "evidence_day"} <= set(logged[0])
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def described(tour, tmp_path_factory):
    """The synthetic tour (VP9 + Opus in Matroska) through the real stages: chunk media in the store,
    frame caches, signals descriptions, a sealed bank."""
    from streamlearn.chunk import run_chunk
    from streamlearn.chunk.frames import run_frames
    from streamlearn.describe.run import run_describe

    corpus = downloaded_tour(tour, tmp_path_factory.mktemp("media"), variant="mkv")
    assert run_chunk(corpus).ok and run_frames(corpus).ok
    assert run_describe(corpus, backend="signals").ok
    corpus.config.train = load_train_config({"targets": ["description", "qa_text", "day_summary"]})
    corpus.save_config()
    B.run_questions(corpus, "main", do_seal=True)
    return corpus


def test_media_paths_are_relative_and_each_format_reads_as_its_tool_does(described, run_cli, tmp_path):
    import webdataset as wds

    chunks = described.chunks.read()
    for fmt in ("sharegpt", "llava", "webdataset"):
        assert run_cli("export", described.root, "--format", fmt).exit_code == 0
    share = described.root / "exports/sharegpt"
    rows = json.loads((share / "train.json").read_text())
    assert len(rows) == json.loads((share / "export.json").read_text())["samples"]
    # LLaMA-Factory 0.9.5's rules: media joined onto media_dir (= dataset_dir, this folder by default), and
    # as many <video> tags in the user turn as videos (mm_plugin._validate_messages)
    for r in rows:
        videos = r.get("videos") or []
        assert r["messages"][0]["content"].count("<video>") == len(videos)
        assert all(not os.path.isabs(v) and (share / v).resolve().is_file() for v in videos)
    montage = next(r for r in rows if r["kind"] == "day_summary")
    assert len(montage["videos"]) == len([c for c in chunks if c["video_id"] == montage["key"].split("/")[0]])
    text_only = [r for r in rows if r["kind"] == "qa_text"]
    assert text_only and all("videos" not in r and "<video>" not in r["messages"][0]["content"] for r in text_only)
    assert "vp9" in (share / "README.md").read_text() and "decord" in (share / "README.md").read_text()
    # the export moves with its corpus: relative paths still resolve
    moved = tmp_path / "moved"
    shutil.copytree(described.root, moved / "corpus", symlinks=True)
    for r in json.loads((moved / "corpus/exports/sharegpt/train.json").read_text()):
        assert all((moved / "corpus/exports/sharegpt" / v).resolve().is_file() for v in r.get("videos") or [])
    # --media-root: paths relative to that folder instead
    res = run_cli("export", described.root, "--format", "llava", "--media-root", described.root, "--out", tmp_path / "l")
    assert res.exit_code == 0, res.output
    llava = json.loads((tmp_path / "l/train.json").read_text())
    video_rows = [r for r in llava if "video" in r]
    assert video_rows and all(isinstance(r["video"], list) or (described.root / r["video"]).is_file()
                              for r in video_rows)
    # webdataset: frames only where there is a video; nothing fake for text-only samples
    shards = sorted(str(p) for p in (described.root / "exports/webdataset").glob("shard-*.tar"))
    samples = list(wds.WebDataset(shards, shardshuffle=False).decode())
    assert len(samples) == len(rows)
    with_video = [s for s in samples if s["json"]["frames"]]
    assert with_video and all(s["npy"].dtype == np.uint8 and s["npy"].ndim == 4 for s in with_video)
    assert all("npy" not in s for s in samples if not s["json"]["frames"])


def test_h264_rendition_is_written_and_pointed_to(described, run_cli, tmp_path):
    from streamlearn.media.probe import probe

    res = run_cli("export", described.root, "--format", "sharegpt", "--h264", "--out", tmp_path / "h")
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "h/train.json").read_text())
    videos = {v for r in rows for v in r.get("videos") or []}
    assert videos and all(v.startswith("media/") and v.endswith(".mp4") for v in videos)
    p = probe(tmp_path / "h" / sorted(videos)[0])
    assert p.vcodec == "h264" and p.has_video
    assert "h264" in (tmp_path / "h/README.md").read_text()


def test_wrong_usage_is_refused_before_anything_is_written(described, run_cli, tmp_path):
    root = described.root
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    cases = [
        (["--format", "hf", "--out", tmp_path / "file.txt"], f"--out {tmp_path / 'file.txt'} is a file; pick a folder"),
        (["--format", "hf", "--out", tmp_path / "other"], "holds files that are not a streamlearn export"),
        (["--format", "hf", "--media-root", tmp_path / "nope"], "is not a folder"),
        (["--format", "hf", "--bank", "main"], "--bank applies to --format lmms-eval"),
        (["--format", "lmms-eval", "--h264"], "apply to the training formats"),
    ]
    for args, text in cases:
        res = run_cli("export", root, *args)
        assert res.exit_code == 1 and text in res.stderr and res.stderr.count("\n") == 1, (args, res.stderr)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine" and (tmp_path / "file.txt").read_text() == "x"


def test_a_failed_export_leaves_the_finished_one(described, run_cli, monkeypatch):
    from streamlearn.export import formats

    assert run_cli("export", described.root, "--format", "sharegpt").exit_code == 0
    before = (described.root / "exports/sharegpt/train.json").read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(formats, "write_sharegpt", broken)
    with pytest.raises(OSError):
        run_cli("export", described.root, "--format", "sharegpt")
    assert (described.root / "exports/sharegpt/train.json").read_bytes() == before
    assert not [p for p in (described.root / "exports").iterdir() if p.name.startswith(".")]


def test_webdataset_keys_have_no_dots(tmp_path):
    from streamlearn.export.formats import write_webdataset
    from streamlearn.export.samples import Sample

    s = Sample(key="v1.x_c000/qa_text0", kind="qa_text", day=1, instruction="i", target="t")
    write_webdataset([s], {s.key: []}, {s.key: []}, tmp_path, tmp_path)
    with tarfile.open(tmp_path / "shard-00000.tar") as tar:
        names = tar.getnames()
    assert names == ["v1_x_c000__qa_text0.txt", "v1_x_c000__qa_text0.json"]
    meta = json.load(io.BytesIO(tarfile.open(tmp_path / "shard-00000.tar").extractfile(names[1]).read()))
    assert meta["key"] == s.key
