"""A budget per hour of real-resolution video (issue 26): every stage at the seed's operating point,
by the product's own commands, on 1080p60 VP9/Opus at the seed's bitrate (~3.2 Mb/s: 1.1 TB for
752.8 h), extrapolated to the seed's 752.8 h on this machine and on 8 nodes of 16 cores.

    python benchmarks/budget.py --work W --out benchmarks/results/budget_cpu2.json
    python benchmarks/budget.py --work W --out ... --only-describe      # describe + questions again
    python benchmarks/budget.py --work W --out ... --speech allison_en  # ASR + diarization of one voice

Media: MINUTES of 1920x1080 at 60 fps (ffmpeg's testsrc2 pattern under changing street-sign text and
a clock, so OCR has text to read) with a real two-person conversation as the sound (Debian's
asterisk prompts of two speakers, `testdata.realdata.conversation`), encoded once and repeated by
stream copy to REPEAT x MINUTES (20 minutes = one chunk at the default). Three encodings of the same
picture: 2 s keyframes (the archival file: frames must decode every frame), 1 s keyframes (the
frame cache's keyframe-only path), and a 640x360 rendition at 500 kb/s.

Each stage is one `python -m streamlearn` process (wall seconds and peak memory from wait4).
`describe --backend openai` talks to a loopback OpenAI-compatible endpoint that answers at once, so
its line is the client's own cost per chunk (frames, encoding, request); the endpoint's rate is the
provider's and is stated per request. Eval is GPU work: its line comes from the H200 measurement in
benchmarks/results/eval_speed_h200_7b.json and the items per chunk of the bank made here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from scale import timed  # noqa: E402

SEED_HOURS, SEED_VIDEOS = 752.8, 67
CORES_HERE, NODES, CORES_PER_NODE = 2, 8, 16
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
SIGNS = ["MAIN STREET", "CENTRAL STATION", "HARBOR MARKET", "CITY HALL", "RIVERSIDE PARK", "OLD TOWN",
         "GRAND HOTEL", "MUSEUM OF ART", "UNION SQUARE", "NORTH PIER", "SUNSET DINER", "BROADWAY"]


def picture(seconds: int, w: int, h: int) -> str:
    signs = "".join(
        f",drawtext=fontfile={FONT}:text='{s}':fontsize={h // 12}:fontcolor=black:box=1:boxcolor=white:"
        f"x=w/12:y=h/3:enable='between(t,{i * 10},{i * 10 + 10})'" for i, s in enumerate(SIGNS))
    return (f"testsrc2=s={w}x{h}:r=60:d={seconds}{signs},drawtext=fontfile={FONT}:text='%{{pts\\:hms}}':"
            f"fontsize={h // 18}:fontcolor=white:x=w-tw-20:y=20")


def repeated(piece: Path, repeat: int, full: Path, name: str) -> None:
    """FULL: REPEAT copies of PIECE end to end by stream copy, titled and dated as one recording."""
    listing = piece.parent / f"{name}.txt"
    listing.write_text("".join(f"file '{piece.name}'\n" for _ in range(repeat)))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    "-metadata", f"title=budget {name}", str(full)], check=True)
    os.utime(full, (1_700_000_000, 1_700_000_000))


def make_media(work: Path, minutes: float, repeat: int) -> dict[str, Path]:
    """{'gop2', 'gop1', 'r360'}: one file each, REPEAT x MINUTES long."""
    from streamlearn.testdata import realdata as R

    seconds = int(minutes * 60)
    wav = work / "speech.wav"
    if not wav.exists():
        conv = R.conversation(R.MEASURED_VOICES[:2], seconds=seconds + 2, seed=1)
        R.write_wav(wav, conv.audio[: seconds * conv.rate], conv.rate)
    out = {}
    for name, (w, h, rate, gop) in {"gop2": (1920, 1080, "3M", 120), "gop1": (1920, 1080, "3M", 60),
                                    "r360": (640, 360, "500k", 120)}.items():
        piece, full = work / f"{name}_piece.mkv", work / name / f"{name}.mkv"
        full.parent.mkdir(exist_ok=True)
        if not full.exists():
            t0 = time.perf_counter()
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", picture(seconds, w, h), "-i", str(wav),
                            "-c:v", "libvpx-vp9", "-b:v", rate, "-deadline", "realtime", "-cpu-used", "8",
                            "-row-mt", "1", "-g", str(gop), "-keyint_min", str(gop), "-c:a", "libopus", "-b:a", "96k",
                            "-ar", "48000", "-shortest", str(piece)], check=True)
            repeated(piece, repeat, full, name)
            print(f"media {name}: {w}x{h}, {full.stat().st_size / 1e6:.0f} MB, "
                  f"{time.perf_counter() - t0:.0f} s to make", flush=True)
        out[name] = full
    return out


def speech_media(work: Path, minutes: float, repeat: int, voices: tuple[str, ...]) -> Path:
    """REPEAT x MINUTES of a conversation of VOICES under a 64x36 picture: ASR and diarization read only
    the sound, so the picture is kept cheap."""
    from streamlearn.testdata import realdata as R

    name = "speech_" + "+".join(voices)
    full = work / name / f"{name}.mkv"
    if full.exists():
        return full
    full.parent.mkdir(parents=True, exist_ok=True)
    seconds = int(minutes * 60)
    wav, piece = work / f"{name}.wav", work / f"{name}_piece.mkv"
    conv = R.conversation(voices, seconds=seconds + 2, seed=1)
    R.write_wav(wav, conv.audio[: seconds * conv.rate], conv.rate)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s=64x36:r=1:d={seconds}",
                    "-i", str(wav), "-c:v", "libvpx-vp9", "-g", "60", "-c:a", "libopus", "-b:a", "96k", "-ar", "48000",
                    "-shortest", str(piece)], check=True)
    repeated(piece, repeat, full, name)
    return full


def run_speech(work: Path, video: Path) -> dict:
    """playlist, download, transcribe and diarize of one speech file; keys '<name>: <stage>'."""
    name, log, out = video.parent.name, work / "log.txt", {}
    c = str(corpus_for(work, name))
    for stage, argv in (("playlist", ["playlist", c, "--from-dir", str(video.parent)]), ("download", ["download", c]),
                        ("transcribe", ["transcribe", c]), ("diarize", ["diarize", c])):
        record(out, log, f"{name}: {stage}", argv)
    return out


def record(out: dict, log: Path, key: str, argv: list[str]) -> None:
    """Run one product command, timed; its seconds, peak MB and exit status go to out[key] and a line."""
    secs, mb, rc = timed(argv, log)
    out[key] = {"seconds": round(secs, 2), "peak_mb": round(mb, 1), "rc": rc}
    print(f"  {key:<34} {secs:8.1f} s  {mb:7.0f} MB" + (f"  (exit {rc}; see {log})" if rc else ""), flush=True)


GOOD = {
    "setting": {"city": "Testville", "region": None, "venue": "Main Street", "indoor": False},
    "time_of_day": "afternoon", "lighting": "daylight",
    "timeline": [{"start_s": 0.0, "end_s": 5.0, "event": "The streamer walks down Main Street."}],
    "people": [{"id": "SPEAKER_00", "name": None, "role": "streamer", "speaks": True, "description": None}],
    "speech": [{"start_s": 1.0, "speaker": "SPEAKER_00", "text": "Hello chat."}],
    "on_screen_text": [{"start_s": 0.0, "text": "MAIN STREET"}], "notable": ["A red bus passes."],
    "continuity": {"from_previous": None, "sets_up": None}, "summary": "A walk down Main Street.",
    "limitations": [], "qa": [{"question": "Which street?", "answer": "Main Street", "type": "place",
                               "evidence_s": [0.0, 5.0]}],
}


class Endpoint:
    """A loopback OpenAI-compatible chat endpoint answering one valid description at once; it counts
    requests and request bytes."""

    def __init__(self):
        self.requests, self.bytes = 0, 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.requests += 1
                owner.bytes += len(body)
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": json.dumps(GOOD)},
                                                "finish_reason": "stop"}],
                                   "usage": {"prompt_tokens": 0, "completion_tokens": 0}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


def corpus_for(work: Path, name: str) -> Path:
    corpus = work / f"corpus_{name}"
    if not corpus.exists():
        subprocess.run([sys.executable, "-m", "streamlearn", "init", str(corpus), "--subject", "budget"], check=True,
                       capture_output=True)
    return corpus


def run(work: Path, media: dict[str, Path], only_describe: bool = False) -> dict:
    """Every stage, or with `only_describe` the describe and questions stages again (--force) on the
    corpora an earlier run in the same WORK left."""
    from streamlearn.core.config import DescribeSection
    from streamlearn.corpus.layout import Corpus

    log = work / "log.txt"
    out: dict = {}

    def stage(key: str, argv: list[str]) -> None:
        record(out, log, key, argv)

    for name in () if only_describe else ("gop2", "gop1", "r360"):
        c = str(corpus_for(work, name))
        stage(f"{name}: playlist", ["playlist", c, "--from-dir", str(media[name].parent)])
        stage(f"{name}: download", ["download", c])
        if name == "gop2":
            stage("gop2: transcribe", ["transcribe", c])
            stage("gop2: diarize", ["diarize", c])
        stage(f"{name}: chunk", ["chunk", c])
        if name == "gop2":
            stage("gop2: chunk --verify", ["chunk", c, "--verify"])
        stage(f"{name}: frames", ["frames", c])
    c = str(corpus_for(work, "gop2"))
    corpus = Corpus.open(c)
    endpoint = Endpoint()
    os.environ["BUDGET_KEY"] = "not-a-secret"
    corpus.config.describe = DescribeSection(backend="openai", model="budget-vlm", endpoint=endpoint.url,
                                             api_key_env="BUDGET_KEY")
    corpus.save_config()
    stage("gop2: describe --backend openai", ["describe", c, "--force"])
    out["gop2: describe --backend openai"].update(requests=endpoint.requests, request_bytes=endpoint.bytes)
    corpus.config.describe = DescribeSection(backend="signals")
    corpus.save_config()
    stage("gop2: describe --backend signals", ["describe", c, "--force"])
    stage("gop2: questions --seal", ["questions", c, "--seal"])
    corpus = Corpus.open(c)
    bank = corpus.root / "questions" / f"{corpus.config.eval.bank}.jsonl"
    out["bank_items"] = sum(1 for line in bank.open() if line.strip()) if bank.exists() else 0
    out["chunks"] = len(corpus.chunks.read())
    out["hours"] = sum(float(r.get("duration_s") or 0) for r in corpus.chunks.read()) / 3600
    return out


def table(res: dict) -> str:
    hours = res["hours"]
    lines = ["| stage | seconds here | per hour of video | 752.8 h, this machine | 752.8 h, 8 x 16 cores |",
             "|---|---|---|---|---|"]
    for key, v in res.items():
        if not isinstance(v, dict) or "seconds" not in v:
            continue
        per_h = v["seconds"] / hours
        here = per_h * SEED_HOURS / 3600
        # 8 x 16 cores = 64 of this machine when items spread over Ray; an item never splits, so a stage
        # per video takes at least one video's time (the seed's videos are ~11.2 h)
        per_video = key.split(": ")[1].split()[0] in ("playlist", "download", "transcribe", "diarize", "chunk")
        floor = per_h * (SEED_HOURS / SEED_VIDEOS) / 3600 if per_video else 0.0
        wide = max(here / (NODES * CORES_PER_NODE / CORES_HERE), floor)
        lines.append(f"| {key} | {v['seconds']:.1f} | {per_h:.0f} s | {here:.1f} h | {wide:.2f} h |")
    # eval is GPU work: the bank's items per hour of video at the H200's measured rates (Qwen2.5-VL-7B)
    speed = json.loads((Path(__file__).parent / "results" / "eval_speed_h200_7b.json").read_text())
    items_per_h = res["bank_items"] / hours
    for system in ("video", "weights"):
        per_h = items_per_h / speed[system]["items_per_s"]
        here = per_h * SEED_HOURS / 3600
        lines.append(f"| eval `{system}`, one checkpoint (1 H200, 7B; {items_per_h:.0f} items an hour) | - | "
                     f"{per_h:.1f} GPU s | {here:.2f} GPU h | {here / NODES / 8:.3f} h on 64 GPUs |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=2.0, help="minutes encoded (then repeated)")
    ap.add_argument("--repeat", type=int, default=10, help="copies of the encoded minutes in each file")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("budget.json"))
    ap.add_argument("--report", type=Path, help="only print the table of this result file")
    ap.add_argument("--speech", help="only ASR and diarization of a conversation of these voices (comma-separated, "
                    "from testdata.realdata.VOICES), added to OUT")
    ap.add_argument("--only-describe", action="store_true",
                    help="run describe and questions again in WORK and update their lines in OUT")
    args = ap.parse_args()
    if args.report:
        print(table(json.loads(args.report.read_text())))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="budget-"))
    work.mkdir(parents=True, exist_ok=True)
    if (args.speech or args.only_describe) and not args.out.exists():
        sys.exit(f"error: --speech and --only-describe add to an earlier run's {args.out}, which does not exist; "
                 "run without them first")
    if args.speech:
        video = speech_media(work, args.minutes, args.repeat, tuple(args.speech.split(",")))
        res = {**json.loads(args.out.read_text()), **run_speech(work, video)}
        args.out.write_text(json.dumps(res, indent=1))
        print(table(res))
        return
    media = make_media(work, args.minutes, args.repeat)
    if args.only_describe and not (work / "corpus_gop2").exists():
        sys.exit(f"error: --only-describe needs an earlier run's {work}/corpus_gop2; run without it first")
    res = run(work, media, args.only_describe)
    if args.only_describe:
        res = {**json.loads(args.out.read_text()), **res}
    args.out.write_text(json.dumps(res, indent=1))
    print(table(res))


if __name__ == "__main__":
    main()
