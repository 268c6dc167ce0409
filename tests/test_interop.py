"""The Ray executor (same manifests as the local one) and the exports (read back by the consuming
libraries where they install here: datasets, webdataset; against their documented shape otherwise).

Run: python -m pytest tests/test_interop.py -q
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from streamlearn.chunk import run_chunk
from streamlearn.config import load_train_config
from streamlearn.chunk.frames import run_frames
from streamlearn.runner import Executor


@pytest.fixture(scope="module")
def base_corpus(tour, tmp_path_factory):
    from streamlearn.acquire.download import run_download
    from streamlearn.acquire.playlist import run_playlist
    from streamlearn.config import Config, CorpusSection, OperatingPoint
    from streamlearn.corpus import Corpus

    root = tmp_path_factory.mktemp("interop")
    truth = json.loads((tour / "ground_truth.json").read_text())
    (root / "rec").mkdir()
    for d in truth["days"]:
        shutil.copy(tour / "media" / f"{d['video_id']}.mp4", root / "rec" / f"{d['video_id']}.mp4")
    op = OperatingPoint(chunk_seconds=20, fps=0.5, max_frames=16, total_pixels=16 * 3136, frame_min_pixels=3136,
                        frame_max_pixels=84 * 168)
    corpus, _ = Corpus.init(root / "corpus", Config(corpus=CorpusSection(timezone="UTC"), operating_point=op))
    run_playlist(corpus, from_dir=root / "rec")
    assert run_download(corpus).ok
    return corpus


def test_ray_executor_gives_the_same_manifests(base_corpus, tmp_path):
    from streamlearn.corpus import Corpus

    local_root, ray_root = tmp_path / "local", tmp_path / "ray"
    shutil.copytree(base_corpus.root, local_root)
    shutil.copytree(base_corpus.root, ray_root)
    local, remote = Corpus.open(local_root), Corpus.open(ray_root)
    assert run_chunk(local).ok and run_frames(local).ok
    ex = Executor(kind="ray", parallel=2)
    try:
        assert run_chunk(remote, executor=ex).ok
        assert run_frames(remote, executor=ex).ok
    finally:
        import ray

        ray.shutdown()
    assert (ray_root / "chunks.csv").read_text() == (local_root / "chunks.csv").read_text()
    assert (ray_root / "videos.csv").read_text() == (local_root / "videos.csv").read_text()
    for npy in sorted((local_root / "frames").glob("*.npy")):
        assert np.array_equal(np.load(npy), np.load(ray_root / "frames" / npy.name))


def test_ray_records_failures_with_reasons(base_corpus, tmp_path):
    from streamlearn.corpus import Corpus

    root = tmp_path / "c"
    shutil.copytree(base_corpus.root, root)
    corpus = Corpus.open(root)
    victim = corpus.videos.read()[0]
    corpus.abs(victim["media_path"]).resolve().write_bytes(b"broken")
    try:
        result = run_chunk(corpus, executor=Executor(kind="ray", parallel=2))
    finally:
        import ray

        ray.shutdown()
    assert "not a media file" in result.failed[victim["video_id"]]
    assert len(result.done) == len(corpus.videos.read()) - 1
    assert corpus.videos.get(victim["video_id"])["chunk_status"] == "failed"


@pytest.fixture(scope="module")
def described(base_corpus, tmp_path_factory):
    from streamlearn.corpus import Corpus
    from streamlearn.describe.run import run_describe
    from streamlearn.evaluate.bank import run_questions

    root = tmp_path_factory.mktemp("exp") / "corpus"
    shutil.copytree(base_corpus.root, root)
    corpus = Corpus.open(root)
    assert run_chunk(corpus).ok and run_frames(corpus).ok
    assert run_describe(corpus, backend="signals").ok
    corpus.config.train = load_train_config({"targets": ["description", "qa_text"]})
    corpus.save_config()
    run_questions(corpus, "main", do_seal=True)
    return corpus


def test_export_llava_and_sharegpt(described, run_cli):
    chunks = described.chunks.read()
    res = run_cli("export", described.root, "--format", "llava")
    assert res.exit_code == 0, res.output
    data = json.loads((described.root / "exports/llava/train.json").read_text())
    assert len(data) == len(chunks)  # video samples only: the qa_text samples have no video
    first = data[0]
    assert first["conversations"][0]["from"] == "human" and first["conversations"][0]["value"].startswith("<video>\n")
    assert first["conversations"][1]["value"].startswith("Day ") and first["video"].endswith(".mp4")
    assert json.loads((described.root / "exports/llava/operating_point.json").read_text())["fps"] == 0.5
    run_cli("export", described.root, "--format", "sharegpt")
    share = json.loads((described.root / "exports/sharegpt/train.json").read_text())
    info = json.loads((described.root / "exports/sharegpt/dataset_info.json").read_text())
    assert info["streamlearn"]["formatting"] == "sharegpt" and info["streamlearn"]["columns"]["videos"] == "videos"
    for s in share:  # LLaMA-Factory: one <video> tag per video, roles alternate user/assistant
        assert s["messages"][0]["content"].count("<video>") == len(s["videos"]) == 1
        assert [m["role"] for m in s["messages"]] == ["user", "assistant"]


def test_export_hf_and_webdataset_load_back(described, run_cli):
    import datasets
    import webdataset as wds

    res = run_cli("export", described.root, "--format", "hf")
    assert res.exit_code == 0, res.output
    ds = datasets.load_from_disk(str(described.root / "exports/hf/dataset"))
    kinds = set(ds["kind"])
    assert kinds == {"description", "qa_text"} and len(ds) > len(described.chunks.read())
    row = ds[0]
    chunk = described.chunks.get(row["chunk_id"])
    h, w = int(chunk["frame_height"]), int(chunk["frame_width"])
    assert h % 28 == 0 and w % 28 == 0 and h * w <= 84 * 168
    assert np.load(row["frames"]).shape[1:] == (h, w, 3) and row["sample_fps"] == pytest.approx(float(chunk["sample_fps"]), abs=1e-4)
    run_cli("export", described.root, "--format", "webdataset")
    shards = sorted(str(p) for p in (described.root / "exports/webdataset").glob("shard-*.tar"))
    samples = list(wds.WebDataset(shards, shardshuffle=False).decode())
    assert len(samples) == len(ds)
    s = samples[0]
    assert s["npy"].dtype == np.uint8 and s["txt"].strip() and s["json"]["kind"] in kinds


def test_export_lmms_eval_task(described, run_cli):
    import yaml

    res = run_cli("export", described.root, "--format", "lmms-eval")
    assert res.exit_code == 0, res.output
    folder = described.root / "exports/lmms-eval/streamlearn_main"
    text = (folder / "streamlearn_main.yaml").read_text()
    # lmms-eval's `!function` tag: load with a constructor that keeps the reference
    yaml.SafeLoader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))
    cfg = yaml.safe_load(text)
    assert cfg["task"] == "streamlearn_main" and cfg["output_type"] == "generate_until"
    assert cfg["doc_to_text"] == ("function", "utils.doc_to_text")
    assert cfg["metric_list"][0]["metric"] == "accuracy"
    ns: dict = {}
    exec((folder / "utils.py").read_text(), ns)
    docs = [json.loads(x) for x in (folder / "docs.jsonl").read_text().splitlines()]
    mc = next(d for d in docs if d["answer_type"] == "mc")
    letter = chr(65 + mc["options"].index(mc["answer"]))
    assert ns["process_results"](mc, [f"The answer is {letter}."]) == {"accuracy": 1.0}
    assert ns["process_results"](mc, ["Z"]) == {"accuracy": 0.0}
    assert ns["doc_to_text"](mc).endswith("Answer with the option's letter.")
    with_video = [d for d in docs if d.get("video")]
    assert with_video and ns["doc_to_visual"](with_video[0]) == [with_video[0]["video"]]
