"""The `streamlearn` command: one `command()` per subcommand, its options the keyword arguments of one
module function; the per-item stages share one option set (--parallel, --only, --force, --executor).
`tests/cli_surface.json` pins every command and option, so a change to the command line is deliberate."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import click

from streamlearn import __version__
from streamlearn.core import console
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.redact import redact
from streamlearn.runner import Executor, stage_lock


class Group(click.Group):
    """Turns StreamlearnError into a one-line `error: ...` and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except StreamlearnError as exc:
            click.echo(f"error: {redact(str(exc))}", err=True)
            sys.exit(1)


class CommaList(click.ParamType):
    """`a,b,c` as a list (of numbers with `item=float`); empty items are dropped."""

    name = "list"

    def __init__(self, item=str):
        self.item = item

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            return [self.item(x.strip()) for x in str(value).split(",") if x.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma list of {'numbers' if self.item is float else 'names'}", param, ctx)


def size_type(value: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not WxH, e.g. 640x360") from None
    if w % 2 or h % 2 or w < 64 or h < 64:
        raise click.BadParameter("width and height must be even and >= 64")
    return w, h


def _call(target: str, *args, **kwargs):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


opt, PATH, FILE = click.option, click.Path(path_type=Path), click.Path(path_type=Path, exists=True, dir_okay=False)
CORPUS_ARG = click.argument("corpus", required=False, type=PATH)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="streamlearn")
@opt("-v", "--verbose", is_flag=True, help="More detail (per-item debug lines).")
@opt("-q", "--quiet", is_flag=True, help="Only errors and final results.")
def cli(verbose: bool, quiet: bool):
    """Turn a long first-person video stream into a training corpus, continually pretrain a VLM
    on it, and measure what it learned.

    CORPUS arguments default to $STREAMLEARN_DATA_ROOT.

    Example: streamlearn init ./corpus --subject "my stream"
    """
    console.set_verbosity(2 if verbose else 0 if quiet else 1)


STAGE_OPTIONS = [
    opt("--parallel", default=1, show_default=True, help="Items processed at once."),
    opt("--only", multiple=True, help="Only these ids (repeatable)."),
    opt("--force", is_flag=True, help="Redo items already done."),
    opt("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
        help="local: threads in this process; ray: one Ray task per item."),
    opt("--ray-address", default=None, help="Attach to a running Ray cluster (e.g. ray://head:10001 or auto)."),
    opt("--gpus-per-task", type=float, default=0.0, show_default=True,
        help="With --executor ray: GPUs each task asks for (ASR or VLM describe on GPUs: 1)."),
    opt("--wait", is_flag=True, help="If this stage is already running on the corpus, wait for it (default: stop)."),
]


def stage_call(target: str, mode: Callable | None = None):
    """`target(corpus, parallel=, only=, force=, executor=, **its options)`; `mode(corpus, options)` takes
    its own options out and may handle the call itself (diarize --calibrate, chunk --merge/--verify)."""
    def call(corpus, parallel, only, force, executor, ray_address, gpus_per_task, wait, **options):
        name = target.rsplit("_", 1)[-1] + (f".{options['node']}" if options.get("node") else "")
        with stage_lock(corpus, name, wait):  # one run of a stage (or of a node's part) per corpus at a time
            if mode and mode(corpus, options):
                return None
            ex = Executor(kind=executor, parallel=parallel, address=ray_address, num_gpus=gpus_per_task)
            result = _call(target, corpus, parallel=parallel, only=list(only), force=force, executor=ex, **options)
        if result.failed:
            sys.exit(1)  # failed items are recorded with their reasons; skipped ones are not failures
    return call


def diarize_mode(c, options: dict) -> bool:
    if reference := options.pop("reference"):
        _call("streamlearn.acquire.diarize:calibrate", c, reference)
    return bool(reference)


def chunk_mode(c, options: dict) -> bool:
    do_merge, do_verify, quick = options.pop("do_merge"), options.pop("do_verify"), options.pop("quick")
    if do_merge:
        _call("streamlearn.chunk:merge", c)
    elif do_verify:
        sys.exit(_call("streamlearn.chunk.chunking:verify_command", c, options["store_uri"], quick))
    return do_merge or do_verify


def command(name: str, target, doc: str, *options, corpus: bool | str = True, then=None, usage_errors: tuple = ()):
    """A command whose options are `target`'s keyword arguments; CORPUS is opened first (`corpus="path"`:
    passed as given; False: no CORPUS argument); `then(result)` handles the result; `usage_errors` are bad
    option values (exit 2 with the usage line)."""
    def callback(**kw):
        if corpus is True:
            kw["corpus"] = Corpus.open(kw["corpus"])
        try:
            out = target(**kw) if callable(target) else _call(target, **kw)
        except usage_errors as exc:
            raise click.BadParameter(str(exc)) from None
        if then:
            then(out)

    callback.__doc__ = doc
    for o in reversed(([CORPUS_ARG] if corpus else []) + list(options)):
        callback = o(callback)
    return cli.command(name=name)(callback)


command("download", stage_call("streamlearn.acquire.download:run_download"),
        "Download every pending video (archival format, info.json, captions), verified and resumable.\n\n"
        "Example: streamlearn download ./corpus --parallel 2", *STAGE_OPTIONS)
command("transcribe", stage_call("streamlearn.acquire.transcribe:run_transcribe"),
        "Transcripts with word times: platform captions first, faster-whisper ASR otherwise.\n\n"
        "Example: streamlearn transcribe ./corpus --parallel 2", *STAGE_OPTIONS)
command("diarize", stage_call("streamlearn.acquire.diarize:run_diarize", diarize_mode),
        "Speaker turns (RTTM) and a speaker-attributed transcript for every transcribed video.\n\n"
        "Example: streamlearn diarize ./corpus --calibrate labelled.rttm",
        opt("--calibrate", "reference", type=FILE, default=None,
            help="Tune the clustering threshold on a labelled sample (RTTM, file id = video_id) and store it."),
        *STAGE_OPTIONS)
command("chunk", stage_call("streamlearn.chunk:run_chunk", chunk_mode),
        "Cut every downloaded video into chunks by stream copy and put them in the chunk store.\n\n"
        "Example: streamlearn chunk ./corpus --chunk-seconds 1200 --store s3://bucket/tour",
        opt("--chunk-seconds", type=float, default=None, help="Chunk length (default: operating_point.chunk_seconds)."),
        opt("--store", "store_uri", default=None, help="Chunk store URI (default: storage.uri)."),
        opt("--node", default=None, help="Write this node's rows to chunks.d/NODE.csv (multi-machine runs)."),
        opt("--merge", "do_merge", is_flag=True, help="Union chunks.d/*.csv into chunks.csv (refuses conflicts)."),
        opt("--verify", "do_verify", is_flag=True, help="Check chunks.csv against the videos and the store."),
        opt("--quick", is_flag=True, help="With --verify: check object sizes only, not their sha256."),
        *STAGE_OPTIONS)
command("frames", stage_call("streamlearn.chunk.frames:run_frames"),
        "Cache every chunk's sampled frames at model resolution for training (frames/<chunk_id>.npy).\n\n"
        "Example: streamlearn frames ./corpus --parallel 2", *STAGE_OPTIONS)
command("describe", stage_call("streamlearn.describe.run:run_describe"),
        "Gold per-chunk descriptions (the training targets), day summaries and a stream digest.\n\n"
        "Example: streamlearn describe ./corpus --backend openai --limit 10 --parallel 8",
        opt("--backend", type=click.Choice(["signals", "openai", "transformers", "batch"]), default=None,
            help="Generator (default: describe.backend in streamlearn.toml)."),
        opt("--limit", type=click.IntRange(min=1), default=None,
            help="Describe at most N chunks (prototype on a few first)."),
        opt("--import", "import_file", type=FILE, default=None,
            help="With --backend batch: ingest the provider's results file."), *STAGE_OPTIONS)
command("rewrite", stage_call("streamlearn.rewrite.run:run_rewrite"),
        "Diverse rewrites of every described chunk's facts (rewrites/<chunk_id>.json), each fact with its day and "
        "clock time, none holding a question bank's question; train on them with train.targets = [\"rewrites\"].\n\n"
        "Example: streamlearn rewrite ./corpus --backend openai --n 8 --limit 10 --parallel 8",
        opt("--backend", type=click.Choice(["signals", "openai"]), default="signals", show_default=True,
            help="signals: the description's fact renderings (offline); openai: describe's endpoint and model."),
        opt("--n", type=click.IntRange(min=1), default=8, show_default=True, help="Rewrites asked for per chunk."),
        opt("--limit", type=click.IntRange(min=1), default=None, help="Rewrite at most N chunks (try a few first)."),
        *STAGE_OPTIONS)

SOURCES = [opt("--url", default=None, help="Playlist, channel or video URL (anything yt-dlp reads)."),
           opt("--from-jsonl", type=PATH, default=None, help="A saved flat playlist (yt-dlp --flat-playlist -j output)."),
           opt("--from-dir", type=PATH, default=None, help="A folder of your own recordings.")]

command("init", "streamlearn.corpus.layout:init_corpus", "Create a corpus folder with its config and empty layout.\n\n"
        "Example: streamlearn init ./corpus --subject \"IRL tour\" --timezone America/New_York",
        opt("--subject", default=None, help="Who the stream is about."),
        opt("--timezone", "tz", default=None, help="Default IANA timezone of the videos, e.g. America/New_York."),
        opt("--storage", default=None, help="Chunk store URI (local path, s3://bucket/prefix, gs://...)."),
        corpus="path", then=click.echo)
command("status", "streamlearn.corpus.status:status_command",
        "Per-stage counts (done/failed/pending), hours and bytes, failed rows with their reasons, training runs and "
        "evaluations. Exits with status 1 when an integrity check fails.\n\nExample: streamlearn status ./corpus --json",
        opt("--json", "as_json", is_flag=True, help="Print the report as JSON."), then=sys.exit)
command("playlist", "streamlearn.acquire.playlist:run_playlist",
        "Add a playlist's videos to videos.csv (re-running appends new ones only).\n\n"
        "Example: streamlearn playlist ./corpus --url \"https://www.youtube.com/playlist?list=PL...\"", *SOURCES)
command("acquire", "streamlearn.acquire.run:run_acquire",
        "Playlist → download → transcribe → diarize, in order; each step skips what is done.\n\n"
        "Example: streamlearn acquire ./corpus --url \"https://www.youtube.com/playlist?list=PL...\" --parallel 2",
        *SOURCES, STAGE_OPTIONS[0], then=lambda results: sys.exit(int(any(r.failed for r in results))))
command("plan", "streamlearn.chunk.plan:plan_command",
        "Token budget per operating point: frames, pairs, frame size, vision tokens (exact vs rule of thumb).\n\n"
        "Example: streamlearn plan --chunk-seconds 600 --chunk-seconds 1200 --fps 0.5 --fps 1 --size 1920x1080\n\n"
        "Example: streamlearn plan ./corpus --forecast   # what frames, train and eval will write, against free space",
        opt("--model", default=None, help="Model id, local folder or preset (tiny, qwen2.5-vl-7b, ...)."),
        opt("--forecast", is_flag=True, help="With CORPUS: bytes of frame cache, training states, exports and eval "
            "answers, the vision tokens and eval passes, against the free space."),
        opt("--chunk-seconds", "chunk_seconds", type=float, multiple=True, help="Chunk length; repeat to compare."),
        opt("--fps", type=float, multiple=True, help="Sampled frames per second; repeat to compare."),
        opt("--size", default="1920x1080", show_default=True, callback=lambda c, p, v: size_type(v),
            help="Source frame size WxH."),
        opt("--source-fps", type=float, default=60.0, show_default=True),
        opt("--total-pixels", type=int, default=None, help="Whole-chunk pixel budget (overrides the config)."),
        opt("--max-frames", type=int, default=None), opt("--frame-min-pixels", type=int, default=None),
        opt("--frame-max-pixels", type=int, default=None), opt("--json", "as_json", is_flag=True),
        corpus="path", then=click.echo)
command("sync", "streamlearn.chunk.sync:run_sync",
        "Additive, never-delete backup of the corpus (manifests, transcripts, descriptions, unchunked media) to an "
        "object store; re-runs copy only what changed.\n\nExample: streamlearn sync ./corpus gs://my-bucket/tour-backup",
        click.argument("uri"))
command("review", "streamlearn.describe.review:run_review",
        "A static HTML page with each chunk's video, transcript, description and QA pairs side by side.\n\n"
        "Example: streamlearn review ./corpus --limit 10",
        opt("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Chunks on the page (0 = all)."),
        opt("--out", type=PATH, default=None, help="Page path (default descriptions/review.html)."), then=click.echo)
command("train", "streamlearn.train.launch:launch",
        "Continually pretrain the model on the stream, day by day (Day-N checkpoints and exports).\n\n"
        "Example: streamlearn train ./corpus --model qwen2.5-vl-7b --days 1-3 --nproc 8",
        opt("--model", default=None, help="Preset (tiny, qwen2.5-vl-7b, ...), model folder or hub id."),
        opt("--days", default=None, help="Days to train, e.g. 3, 1-3 or 1,4-5 (default: every described day)."),
        opt("--config", "config_path", type=FILE, default=None,
            help="A TOML file with [train] settings (overrides streamlearn.toml)."),
        opt("--run", default=None, help="Run name: runs/RUN/ (default: train.run, 'main')."),
        opt("--max-steps", type=int, default=None, help="Stop after this many optimizer steps (smoke runs)."),
        opt("--nproc", type=int, default=1, show_default=True, help="Processes (GPUs) on this machine, via torchrun."),
        opt("--slurm", is_flag=True, help="Write a multi-node sbatch script instead of running."),
        opt("--nodes", type=int, default=2, show_default=True, help="With --slurm: nodes."),
        opt("--gpus-per-node", type=int, default=8, show_default=True, help="With --slurm: GPUs per node."),
        opt("--partition", default=None, help="With --slurm: the partition."),
        opt("--submit", "do_submit", is_flag=True, help="With --slurm: submit the script with sbatch."),
        opt("--force", is_flag=True, help="Start even when the forecast of states and exports exceeds the free space."),
        then=sys.exit)
command("questions", "streamlearn.evaluate.bank:run_questions",
        "Build the question bank from the descriptions (or import one), and seal it.\n\n"
        "Example: streamlearn questions ./corpus --seal",
        opt("--bank", "name", default="main", show_default=True, help="Bank name: questions/BANK.jsonl."),
        opt("--import", "import_file", type=FILE, default=None,
            help="A human-written CSV or JSONL bank instead of generating one."),
        opt("--seal", "do_seal", is_flag=True, help="Freeze the bank (its hash is recorded; changes are refused)."),
        STAGE_OPTIONS[2])
command("eval", "streamlearn.evaluate.run:run_eval",
        "Day-0 vs Day-N: memorised / transfer / placebo with paired cluster CIs, audit, guesser, forgetting.\n\n"
        "Example: streamlearn eval ./corpus --systems weights,rag --checkpoints day0,day3",
        opt("--bank", default=None, help="Question bank (default: eval.bank)."),
        opt("--systems", type=CommaList(), default=None,
            help="Comma list of weights, video, rag, openai (default: eval.systems)."),
        opt("--checkpoints", "wanted", type=CommaList(), default=None,
            help="Comma list like day0,day3 (default: every Day-N export)."),
        opt("--run", default=None, help="Training run whose exports are evaluated (default: eval.run)."),
        opt("--name", default=None, help="Output folder under evals/ (default RUN-BANK)."))
command("report", "streamlearn.evaluate.report:run_report",
        "A static HTML report: accuracy by category with CIs, retention heatmap, loss curve, cost table.\n\n"
        "Example: streamlearn report ./corpus",
        opt("--name", default=None, help="Evaluation under evals/ (default RUN-BANK)."), then=click.echo)
command("sweep", "streamlearn.evaluate.sweep:run_sweep",
        "Operating-point sweep: the video system over the bank per model x chunk length x fps.\n\n"
        "Example: streamlearn sweep ./corpus --models Qwen/Qwen2.5-VL-7B-Instruct --chunk-seconds 300,1200 --fps 0.5,1",
        opt("--models", type=CommaList(), required=True, help="Comma list of presets, model folders or hub ids."),
        opt("--chunk-seconds", "chunk_seconds", type=CommaList(float), required=True,
            help="Comma list, e.g. 300,600,1200."),
        opt("--fps", type=CommaList(float), required=True, help="Comma list, e.g. 0.5,1."),
        opt("--bank", default=None, help="Question bank (default: eval.bank)."),
        opt("--limit", type=click.IntRange(min=1), default=None, help="Only the first N questions with evidence."))
command("export", "streamlearn.export:run_export",
        "The training samples for LLaMA-Factory / ms-swift / qwen-vl-finetune / datasets / webdataset (exactly what "
        "training takes, never a held-out QA pair), or the question bank as an lmms-eval task.\n\n"
        "Example: streamlearn export ./corpus --format sharegpt --run main --media-root /data/tour",
        opt("--format", "fmt", type=click.Choice(["llava", "sharegpt", "hf", "webdataset", "lmms-eval"]), required=True,
            help="Target shape (lmms-eval exports the question bank)."),
        opt("--run", default=None, help="Export the targets this training run recorded (default: what training "
            "would take now); with lmms-eval, the run whose Day-N exports the task scores (default: eval.run)."),
        opt("--bank", default=None, help="With --format lmms-eval: the bank (default: eval.bank)."),
        opt("--out", type=PATH, default=None, help="Folder (default exports/FORMAT); an earlier export is replaced."),
        opt("--media-root", type=PATH, default=None,
            help="Write video and frame paths relative to this folder (default: the export folder)."),
        opt("--h264", is_flag=True, help="Also write an H.264 MP4 rendition of each chunk and point to it (for "
            "readers that cannot decode VP9, such as decord)."),
        opt("--no-heldout-protection", is_flag=True,
            help="Export even though no question bank is sealed (the export's README then says it is unprotected); "
            "a sealed bank is always honoured."), then=click.echo)
command("demo", "streamlearn.demo:run_demo",
        "Run the whole chain on embedded defaults: a synthetic tour, then every stage.\n\n"
        "Example: streamlearn demo ./demo-corpus",
        click.argument("workdir", required=False, default="demo-corpus", type=PATH),
        opt("--days", default=3, show_default=True, help="Days of synthetic tour."),
        opt("--minutes", default=1.5, show_default=True, help="Minutes of video per day."),
        opt("--chunk-seconds", default=30.0, show_default=True),
        opt("--epochs", default=2, show_default=True, help="Training passes over each day."), corpus=False)
command("synth", "streamlearn.testdata.synth:synth_command",
        "Make a synthetic multi-day IRL tour (the project's test and demo data).\n\n"
        "Example: streamlearn synth ./tour --days 3 --minutes 2 --seed 0 --serve",
        click.argument("out", type=PATH), opt("--days", default=3, show_default=True, help="Days (one video each)."),
        opt("--minutes", default=2.0, show_default=True, help="Length of each day's video."),
        opt("--seed", default=0, show_default=True),
        opt("--speakers", default=2, show_default=True, help="Distinct voices (2-4)."),
        opt("--scene-seconds", default=30.0, show_default=True, help="Mean scene length."),
        opt("--size", default="640x360", show_default=True, callback=lambda c, p, v: size_type(v),
            help="Frame size WxH."),
        opt("--fps", default=30, show_default=True),
        opt("--gop-seconds", default=2.0, show_default=True, help="Keyframe interval."),
        opt("--variants", type=CommaList(), default="mkv,mp4", show_default=True, help="mkv (VP9+Opus) and/or mp4 (H.264+AAC)."),
        opt("--captions", "caption_days", default="even", show_default=True,
            type=click.Choice(["even", "odd", "all", "none"]), help="Which days get platform captions."),
        opt("--serve", is_flag=True, help="After rendering (or if OUT already holds a tour), serve it on 127.0.0.1."),
        opt("--port", default=0, show_default=True, help="Port for --serve (0 = any free port)."),
        corpus=False, usage_errors=(ValueError,))


def main():
    cli(prog_name="streamlearn")
