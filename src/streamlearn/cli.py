"""The `streamlearn` command: a thin shell over the stage modules, one subcommand per stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from streamlearn import __version__, console
from streamlearn.errors import StreamlearnError


class Group(click.Group):
    """Turns StreamlearnError into a one-line `error: ...` and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except StreamlearnError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


CORPUS_ARG = click.argument("corpus", required=False, type=click.Path(path_type=Path))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="streamlearn")
@click.option("-v", "--verbose", is_flag=True, help="More detail (per-item debug lines).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and final results.")
def cli(verbose: bool, quiet: bool):
    """Turn a long first-person video stream into a training corpus, continually pretrain a VLM
    on it, and measure what it learned.

    CORPUS arguments default to $STREAMLEARN_DATA_ROOT.

    Example: streamlearn init ./corpus --subject "my stream"
    """
    console.set_verbosity(2 if verbose else 0 if quiet else 1)


@cli.command()
@CORPUS_ARG
@click.option("--subject", default=None, help="Who the stream is about.")
@click.option("--timezone", "tz", default=None, help="Default IANA timezone of the videos, e.g. America/New_York.")
@click.option("--storage", default=None, help="Chunk store URI (local path, s3://bucket/prefix, gs://...).")
def init(corpus, subject, tz, storage):
    """Create a corpus folder with its config and empty layout.

    Example: streamlearn init ./corpus --subject "IRL tour" --timezone America/New_York
    """
    from streamlearn.config import Config, CorpusSection, StorageSection
    from streamlearn.corpus import Corpus

    cfg = Config()
    if subject or tz:
        cfg.corpus = CorpusSection(subject=subject or cfg.corpus.subject, timezone=tz or cfg.corpus.timezone)
    if storage:
        cfg.storage = StorageSection(uri=storage)
    c, created = Corpus.init(corpus, cfg)
    click.echo(f"{'created' if created else 'already a corpus:'} {c.root}")


@cli.command()
@CORPUS_ARG
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def status(corpus, as_json):
    """Per-stage counts (done/failed/pending), hours and bytes, failed rows with their reasons,
    training runs and evaluations. Exits with status 2 when an integrity check fails.

    Example: streamlearn status ./corpus --json
    """
    from streamlearn.corpus import Corpus
    from streamlearn.status import corpus_status, format_status

    report = corpus_status(Corpus.open(corpus))
    click.echo(json.dumps(report, indent=1) if as_json else format_status(report))
    if report["problems"]:  # an integrity check failed: scripts and CI see it in the exit status
        sys.exit(2)


@cli.command()
@CORPUS_ARG
@click.option("--url", default=None, help="Playlist, channel or video URL (anything yt-dlp reads).")
@click.option("--from-jsonl", type=click.Path(path_type=Path), default=None,
              help="A saved flat playlist (yt-dlp --flat-playlist -j output).")
@click.option("--from-dir", type=click.Path(path_type=Path), default=None, help="A folder of your own recordings.")
def playlist(corpus, url, from_jsonl, from_dir):
    """Add a playlist's videos to videos.csv (re-running appends new ones only).

    Example: streamlearn playlist ./corpus --url "https://www.youtube.com/playlist?list=PL..."
    """
    from streamlearn.acquire.playlist import run_playlist
    from streamlearn.corpus import Corpus

    run_playlist(Corpus.open(corpus), url=url, from_jsonl=from_jsonl, from_dir=from_dir)


PARALLEL = click.option("--parallel", default=1, show_default=True, help="Items processed at once.")
ONLY = click.option("--only", multiple=True, help="Only these ids (repeatable).")
FORCE = click.option("--force", is_flag=True, help="Redo items already done.")


def _executor_options(fn):
    fn = click.option("--gpus-per-task", type=float, default=0.0, show_default=True,
                      help="With --executor ray: GPUs each task asks for (ASR or VLM describe on GPUs: 1).")(fn)
    fn = click.option("--ray-address", default=None, help="Attach to a running Ray cluster (e.g. ray://head:10001 or auto).")(fn)
    fn = click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                      help="local: threads in this process; ray: one Ray task per item.")(fn)
    return fn


def _executor(kind, address, gpus, parallel):
    from streamlearn.runner import Executor

    return Executor(kind=kind, parallel=parallel, address=address, num_gpus=gpus)


def _exit_on_failures(result) -> None:
    if result.failed:
        sys.exit(1)


@cli.command()
@CORPUS_ARG
@PARALLEL
@ONLY
@FORCE
@_executor_options
def download(corpus, parallel, only, force, executor, ray_address, gpus_per_task):
    """Download every pending video (archival format, info.json, captions), verified and resumable.

    Example: streamlearn download ./corpus --parallel 2
    """
    from streamlearn.acquire.download import run_download
    from streamlearn.corpus import Corpus

    _exit_on_failures(run_download(Corpus.open(corpus), parallel=parallel, only=list(only), force=force,
                                   executor=_executor(executor, ray_address, gpus_per_task, parallel)))


@cli.command()
@CORPUS_ARG
@PARALLEL
@ONLY
@FORCE
@_executor_options
def transcribe(corpus, parallel, only, force, executor, ray_address, gpus_per_task):
    """Transcripts with word times: platform captions first, faster-whisper ASR otherwise.

    Example: streamlearn transcribe ./corpus --parallel 2
    """
    from streamlearn.acquire.transcribe import run_transcribe
    from streamlearn.corpus import Corpus

    _exit_on_failures(run_transcribe(Corpus.open(corpus), parallel=parallel, only=list(only), force=force,
                                     executor=_executor(executor, ray_address, gpus_per_task, parallel)))


@cli.command()
@CORPUS_ARG
@PARALLEL
@ONLY
@FORCE
@click.option("--calibrate", "reference", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Tune the clustering threshold on a labelled sample (RTTM, file id = video_id) and store it.")
@_executor_options
def diarize(corpus, parallel, only, force, reference, executor, ray_address, gpus_per_task):
    """Speaker turns (RTTM) and a speaker-attributed transcript for every transcribed video.

    Example: streamlearn diarize ./corpus --calibrate labelled.rttm
    """
    from streamlearn.acquire.diarize import calibrate, run_diarize
    from streamlearn.corpus import Corpus

    c = Corpus.open(corpus)
    if reference:
        calibrate(c, reference)
        return
    _exit_on_failures(run_diarize(c, parallel=parallel, only=list(only), force=force,
                                  executor=_executor(executor, ray_address, gpus_per_task, parallel)))


@cli.command()
@CORPUS_ARG
@click.option("--url", default=None, help="Playlist URL to add first (optional when videos.csv has rows).")
@click.option("--from-jsonl", type=click.Path(path_type=Path), default=None)
@click.option("--from-dir", type=click.Path(path_type=Path), default=None)
@PARALLEL
def acquire(corpus, url, from_jsonl, from_dir, parallel):
    """Playlist → download → transcribe → diarize, in order; each step skips what is done.

    Example: streamlearn acquire ./corpus --url "https://www.youtube.com/playlist?list=PL..." --parallel 2
    """
    from streamlearn.acquire.run import run_acquire
    from streamlearn.corpus import Corpus

    results = run_acquire(Corpus.open(corpus), url=url, from_jsonl=from_jsonl, from_dir=from_dir, parallel=parallel)
    if any(r.failed for r in results):
        sys.exit(1)


@cli.command()
@CORPUS_ARG
@click.option("--chunk-seconds", type=float, default=None, help="Chunk length (default: operating_point.chunk_seconds).")
@click.option("--store", "store_uri", default=None, help="Chunk store URI (default: storage.uri).")
@click.option("--node", default=None, help="Write this node's rows to chunks.d/NODE.csv (multi-machine runs).")
@click.option("--merge", "do_merge", is_flag=True, help="Union chunks.d/*.csv into chunks.csv (refuses conflicts).")
@click.option("--verify", "do_verify", is_flag=True, help="Check chunks.csv against the videos and the store.")
@click.option("--quick", is_flag=True, help="With --verify: check object sizes only, not their sha256.")
@PARALLEL
@ONLY
@FORCE
@_executor_options
def chunk(corpus, chunk_seconds, store_uri, node, do_merge, do_verify, quick, parallel, only, force, executor,
          ray_address, gpus_per_task):
    """Cut every downloaded video into chunks by stream copy and put them in the chunk store.

    Example: streamlearn chunk ./corpus --chunk-seconds 1200 --store s3://bucket/tour
    """
    from streamlearn.chunk import merge, run_chunk, verify
    from streamlearn.corpus import Corpus

    c = Corpus.open(corpus)
    if do_merge:
        merge(c)
        return
    if do_verify:
        problems = verify(c, store_uri, check_hash=not quick)
        for p in problems:
            click.echo(f"verify: {p}")
        click.echo(f"verify: {len(c.chunks.read())} chunks, {len(problems)} problems")
        if problems:
            sys.exit(1)
        return
    _exit_on_failures(run_chunk(c, chunk_seconds=chunk_seconds, store_uri=store_uri, node=node, parallel=parallel,
                                only=list(only), force=force,
                                executor=_executor(executor, ray_address, gpus_per_task, parallel)))


@cli.command()
@CORPUS_ARG
@PARALLEL
@ONLY
@FORCE
@_executor_options
def frames(corpus, parallel, only, force, executor, ray_address, gpus_per_task):
    """Cache every chunk's sampled frames at model resolution for training (frames/<chunk_id>.npy).

    Example: streamlearn frames ./corpus --parallel 2
    """
    from streamlearn.corpus import Corpus
    from streamlearn.chunk.frames import run_frames

    _exit_on_failures(run_frames(Corpus.open(corpus), parallel=parallel, only=list(only), force=force,
                                 executor=_executor(executor, ray_address, gpus_per_task, parallel)))


@cli.command()
@CORPUS_ARG
@click.option("--model", default=None, help="Model id, local folder or preset (tiny, qwen2.5-vl-7b, ...).")
@click.option("--chunk-seconds", "chunk_seconds", type=float, multiple=True, help="Chunk length; repeat to compare.")
@click.option("--fps", type=float, multiple=True, help="Sampled frames per second; repeat to compare.")
@click.option("--size", default="1920x1080", show_default=True, help="Source frame size WxH.")
@click.option("--source-fps", type=float, default=60.0, show_default=True)
@click.option("--total-pixels", type=int, default=None, help="Whole-chunk pixel budget (overrides the config).")
@click.option("--max-frames", type=int, default=None)
@click.option("--frame-min-pixels", type=int, default=None)
@click.option("--frame-max-pixels", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
def plan(corpus, model, chunk_seconds, fps, size, source_fps, total_pixels, max_frames, frame_min_pixels,
         frame_max_pixels, as_json):
    """Token budget per operating point: frames, pairs, frame size, vision tokens (exact vs rule of thumb).

    Example: streamlearn plan --chunk-seconds 600 --chunk-seconds 1200 --fps 0.5 --fps 1 --size 1920x1080
    """
    from dataclasses import replace

    from streamlearn.config import ConfigError, OperatingPoint
    from streamlearn.corpus import Corpus
    from streamlearn.chunk.plan import format_table, plan_table

    op = Corpus.open(corpus).config.operating_point if corpus else OperatingPoint()
    overrides = {k: v for k, v in {"total_pixels": total_pixels, "max_frames": max_frames,
                                   "frame_min_pixels": frame_min_pixels, "frame_max_pixels": frame_max_pixels}.items()
                 if v is not None}
    try:
        op = replace(op, **overrides)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[1]) from None
    w, h = _size(size)
    rows = plan_table(op, list(chunk_seconds) or [op.chunk_seconds], list(fps) or [op.fps], w, h, source_fps, model)
    click.echo(json.dumps(rows, indent=1) if as_json else format_table(rows))


@cli.command()
@CORPUS_ARG
@click.argument("uri")
def sync(corpus, uri):
    """Additive, never-delete backup of the corpus (manifests, transcripts, descriptions, unchunked
    media) to an object store; re-runs copy only what changed.

    Example: streamlearn sync ./corpus gs://my-bucket/tour-backup
    """
    from streamlearn.corpus import Corpus
    from streamlearn.chunk.sync import run_sync

    run_sync(Corpus.open(corpus), uri)


@cli.command()
@CORPUS_ARG
@click.option("--backend", type=click.Choice(["signals", "openai", "transformers", "batch"]), default=None,
              help="Generator (default: describe.backend in streamlearn.toml).")
@click.option("--limit", type=int, default=None, help="Describe at most N chunks (prototype on a few first).")
@click.option("--import", "import_file", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="With --backend batch: ingest the provider's results file.")
@PARALLEL
@ONLY
@FORCE
@_executor_options
def describe(corpus, backend, limit, import_file, parallel, only, force, executor, ray_address, gpus_per_task):
    """Gold per-chunk descriptions (the training targets), day summaries and a stream digest.

    Example: streamlearn describe ./corpus --backend openai --limit 10 --parallel 8
    """
    from streamlearn.corpus import Corpus
    from streamlearn.describe.run import run_describe

    if import_file and backend not in (None, "batch"):
        raise click.BadParameter("--import goes with --backend batch")
    result = run_describe(Corpus.open(corpus), backend="batch" if import_file else backend, limit=limit,
                          only=list(only), parallel=parallel, force=force, import_file=import_file,
                          executor=_executor(executor, ray_address, gpus_per_task, parallel))
    _exit_on_failures(result)


@cli.command()
@CORPUS_ARG
@click.option("--limit", type=int, default=20, show_default=True, help="Chunks on the page (0 = all).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Page path (default descriptions/review.html).")
def review(corpus, limit, out):
    """A static HTML page with each chunk's video, transcript, description and QA pairs side by side.

    Example: streamlearn review ./corpus --limit 10
    """
    from streamlearn.corpus import Corpus
    from streamlearn.describe.review import run_review

    click.echo(run_review(Corpus.open(corpus), limit=limit or None, out=out))


TRAIN_OPTIONS = [
    click.option("--model", default=None, help="Preset (tiny, qwen2.5-vl-7b, ...), model folder or hub id."),
    click.option("--days", default=None, help="Days to train, e.g. 3, 1-3 or 1,4-5 (default: every described day)."),
    click.option("--config", "config_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
                 default=None, help="A TOML file with [train] settings (overrides streamlearn.toml)."),
    click.option("--run", default=None, help="Run name: runs/RUN/ (default: train.run, 'main')."),
    click.option("--max-steps", type=int, default=None, help="Stop after this many optimizer steps (smoke runs)."),
]


def _train_options(fn):
    for opt in reversed(TRAIN_OPTIONS):
        fn = opt(fn)
    return fn


def _train_config(c, model, config_path, run):
    from streamlearn.config import load_train_config

    return load_train_config(c.config.train, config_path, model=model, run=run)


@cli.command()
@CORPUS_ARG
@_train_options
@click.option("--nproc", type=int, default=1, show_default=True, help="Processes (GPUs) on this machine, via torchrun.")
@click.option("--slurm", is_flag=True, help="Write a multi-node sbatch script instead of running.")
@click.option("--nodes", type=int, default=2, show_default=True, help="With --slurm: nodes.")
@click.option("--gpus-per-node", type=int, default=8, show_default=True, help="With --slurm: GPUs per node.")
@click.option("--partition", default=None, help="With --slurm: the partition.")
@click.option("--submit", is_flag=True, help="With --slurm: submit the script with sbatch.")
def train(corpus, model, days, config_path, run, max_steps, nproc, slurm, nodes, gpus_per_node, partition, submit):
    """Continually pretrain the model on the stream, day by day (Day-N checkpoints and exports).

    Example: streamlearn train ./corpus --model qwen2.5-vl-7b --days 1-3 --nproc 8
    """
    from streamlearn.corpus import Corpus
    from streamlearn.train.launch import parse_days, run_torchrun, submit as sbatch, write_sbatch

    c = Corpus.open(corpus)
    cfg = _train_config(c, model, config_path, run)
    parse_days(days)
    args = [str(c.root)] + [a for k, v in (("--model", model), ("--days", days), ("--config", config_path),
                                           ("--run", run), ("--max-steps", max_steps)) if v is not None
                            for a in (k, str(v))]
    if slurm:
        path = write_sbatch(c, cfg.run, nodes, gpus_per_node, args, partition)
        click.echo(f"wrote {path}")
        if submit:
            click.echo(sbatch(path))
        return
    if nproc > 1:
        sys.exit(run_torchrun(nproc, args))
    sys.exit(train_worker(args))


def train_worker(argv: list[str]) -> int:
    """One training process (also what each torchrun worker runs)."""
    import argparse

    from streamlearn.corpus import Corpus
    from streamlearn.train.engine import train as run_training
    from streamlearn.train.launch import parse_days

    ap = argparse.ArgumentParser(prog="streamlearn.train")
    ap.add_argument("corpus")
    for name in ("--model", "--days", "--config", "--run"):
        ap.add_argument(name)
    ap.add_argument("--max-steps", type=int)
    a = ap.parse_args(argv)
    try:
        c = Corpus.open(a.corpus)
        cfg = _train_config(c, a.model, Path(a.config) if a.config else None, a.run)
        run_training(c, cfg, parse_days(a.days), a.max_steps)
    except StreamlearnError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    return 0


@cli.command()
@CORPUS_ARG
@click.option("--bank", default="main", show_default=True, help="Bank name: questions/BANK.jsonl.")
@click.option("--import", "import_file", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="A human-written CSV or JSONL bank instead of generating one.")
@click.option("--seal", "do_seal", is_flag=True, help="Freeze the bank (its hash is recorded; changes are refused).")
@FORCE
def questions(corpus, bank, import_file, do_seal, force):
    """Build the question bank from the descriptions (or import one), and seal it.

    Example: streamlearn questions ./corpus --seal
    """
    from streamlearn.corpus import Corpus
    from streamlearn.evaluate.bank import run_questions

    run_questions(Corpus.open(corpus), bank, import_file=import_file, do_seal=do_seal, force=force)


@cli.command(name="eval")
@CORPUS_ARG
@click.option("--bank", default=None, help="Question bank (default: eval.bank).")
@click.option("--systems", default=None, help="Comma list of weights, video, rag, openai (default: eval.systems).")
@click.option("--checkpoints", default=None, help="Comma list like day0,day3 (default: every Day-N export).")
@click.option("--run", default=None, help="Training run whose exports are evaluated (default: eval.run).")
@click.option("--name", default=None, help="Output folder under evals/ (default RUN-BANK).")
def eval_cmd(corpus, bank, systems, checkpoints, run, name):
    """Day-0 vs Day-N: memorised / transfer / placebo with paired cluster CIs, audit, guesser, forgetting.

    Example: streamlearn eval ./corpus --systems weights,rag --checkpoints day0,day3
    """
    from streamlearn.corpus import Corpus
    from streamlearn.evaluate.run import run_eval

    split = (lambda v: [x.strip() for x in v.split(",") if x.strip()] if v else None)
    run_eval(Corpus.open(corpus), bank=bank, systems=split(systems), wanted=split(checkpoints), run=run, name=name)


@cli.command()
@CORPUS_ARG
@click.option("--name", default=None, help="Evaluation under evals/ (default RUN-BANK).")
def report(corpus, name):
    """A static HTML report: accuracy by category with CIs, retention heatmap, loss curve, cost table.

    Example: streamlearn report ./corpus
    """
    from streamlearn.corpus import Corpus
    from streamlearn.evaluate.report import run_report

    click.echo(run_report(Corpus.open(corpus), name))


@cli.command()
@CORPUS_ARG
@click.option("--models", required=True, help="Comma list of presets, model folders or hub ids.")
@click.option("--chunk-seconds", "chunk_seconds", required=True, help="Comma list, e.g. 300,600,1200.")
@click.option("--fps", required=True, help="Comma list, e.g. 0.5,1.")
@click.option("--bank", default=None, help="Question bank (default: eval.bank).")
@click.option("--limit", type=int, default=None, help="Only the first N questions with evidence.")
def sweep(corpus, models, chunk_seconds, fps, bank, limit):
    """Operating-point sweep: the video system over the bank per model x chunk length x fps.

    Example: streamlearn sweep ./corpus --models Qwen/Qwen2.5-VL-7B-Instruct --chunk-seconds 300,1200 --fps 0.5,1
    """
    from streamlearn.corpus import Corpus
    from streamlearn.evaluate.sweep import run_sweep

    def floats(v):
        try:
            return [float(x) for x in v.split(",") if x.strip()]
        except ValueError:
            raise click.BadParameter(f"{v!r} is not a comma list of numbers") from None

    run_sweep(Corpus.open(corpus), [m.strip() for m in models.split(",") if m.strip()], floats(chunk_seconds),
              floats(fps), bank=bank, limit=limit)


@cli.command()
@CORPUS_ARG
@click.option("--format", "fmt", type=click.Choice(["llava", "sharegpt", "hf", "webdataset", "lmms-eval"]),
              required=True, help="Target shape (lmms-eval exports the question bank).")
@click.option("--bank", default=None, help="With --format lmms-eval: the bank (default: eval.bank).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder (default exports/FORMAT).")
def export(corpus, fmt, bank, out):
    """Training pairs for LLaMA-Factory / ms-swift / qwen-vl-finetune / datasets / webdataset, or the
    question bank as an lmms-eval task.

    Example: streamlearn export ./corpus --format sharegpt
    """
    from streamlearn.corpus import Corpus
    from streamlearn.export import run_export

    click.echo(run_export(Corpus.open(corpus), fmt, out, bank))


def _size(value: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not WxH, e.g. 640x360") from None
    if w % 2 or h % 2 or w < 64 or h < 64:
        raise click.BadParameter("width and height must be even and >= 64")
    return w, h


@cli.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--days", default=3, show_default=True, help="Days (one video each).")
@click.option("--minutes", default=2.0, show_default=True, help="Length of each day's video.")
@click.option("--seed", default=0, show_default=True)
@click.option("--speakers", default=2, show_default=True, help="Distinct voices (2-4).")
@click.option("--scene-seconds", default=30.0, show_default=True, help="Mean scene length.")
@click.option("--size", default="640x360", show_default=True, help="Frame size WxH.")
@click.option("--fps", default=30, show_default=True)
@click.option("--gop-seconds", default=2.0, show_default=True, help="Keyframe interval.")
@click.option("--variants", default="mkv,mp4", show_default=True, help="mkv (VP9+Opus) and/or mp4 (H.264+AAC).")
@click.option("--captions", "caption_days", default="even", show_default=True,
              type=click.Choice(["even", "odd", "all", "none"]), help="Which days get platform captions.")
@click.option("--serve", is_flag=True, help="After rendering (or if OUT already holds a tour), serve it on 127.0.0.1.")
@click.option("--port", default=0, show_default=True, help="Port for --serve (0 = any free port).")
def synth(out, days, minutes, seed, speakers, scene_seconds, size, fps, gop_seconds, variants, caption_days,
          serve, port):
    """Make a synthetic multi-day IRL tour (the project's test and demo data).

    Example: streamlearn synth ./tour --days 3 --minutes 2 --seed 0 --serve
    """
    from streamlearn.testdata.synth import synthesize

    if not (out / "ground_truth.json").exists():
        try:
            synthesize(out, days=days, minutes=minutes, seed=seed, speakers=speakers, scene_seconds=scene_seconds,
                       size=_size(size), fps=fps, gop_seconds=gop_seconds,
                       variants=tuple(v.strip() for v in variants.split(",") if v.strip()),
                       caption_days=caption_days)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        click.echo(f"tour written to {out}")
    elif not serve:
        raise StreamlearnError(f"{out} already holds a synthetic tour; pick an empty folder or add --serve")
    if serve:
        from streamlearn.testdata.loopback import LoopbackServer

        srv = LoopbackServer(out, port=port)
        click.echo(f"serving {out} at {srv.base_url}/ (playlist: {srv.url('playlist.rss')}); Ctrl-C stops")
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            click.echo("stopped")


@cli.command()
@click.argument("workdir", required=False, default="demo-corpus", type=click.Path(path_type=Path))
@click.option("--days", default=3, show_default=True, help="Days of synthetic tour.")
@click.option("--minutes", default=1.5, show_default=True, help="Minutes of video per day.")
@click.option("--chunk-seconds", default=30.0, show_default=True)
def demo(workdir, days, minutes, chunk_seconds):
    """Run the whole chain on embedded defaults: a synthetic tour, then every stage.

    Example: streamlearn demo ./demo-corpus
    """
    from streamlearn.demo import run_demo

    run_demo(workdir, days=days, minutes=minutes, chunk_seconds=chunk_seconds)


def main():
    cli(prog_name="streamlearn")


if __name__ == "__main__":
    main()
