"""Render a synthetic IRL tour: one video per day, shaped like a livestream VOD.

Per day: scenes with a city/venue caption, a local-time clock overlay, a sign (on-screen text)
and a moving shape; English narration from espeak-ng in clearly different voices at known
times; a YouTube-style `<id>.info.json`; auto-caption-style WebVTT on some days; VP9+Opus MKV
and H.264+AAC MP4 variants. `ground_truth.json` records everything, with exact utterance times.

Files (all under OUT):
    media/<id>.mkv  media/<id>.mp4  media/<id>.jpg  media/<id>.info.json  media/<id>.en.vtt
    dash/<id>/manifest.mpd   DASH: VP9 and H.264 video, Opus and AAC audio, 4 s fragments, captions
    watch/<id>.html      a page with one <video> and both progressive files (yt-dlp's generic extractor)
    playlist.rss         an RSS feed of the DASH manifests, one <item> per day with guid and pubDate
    playlist.html        every day's <video> on one page
    playlist_raw.jsonl   a saved flat playlist, as `yt-dlp --flat-playlist -j` would write
    ground_truth.json
Text files may hold `{BASE}`, which the loopback server replaces by its own address.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import wave
from datetime import datetime, timezone
from email.utils import format_datetime
from html import escape
from pathlib import Path

import numpy as np

from streamlearn.core import console
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.files import atomic_write_text
from streamlearn.testdata.synth_plan import Day, TourPlan, Utterance, Word, plan_tour

SPEECH_RATE = 22050
FONT_CANDIDATES = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
]


def require_tool(name: str, package: str | None = None) -> str:
    path = shutil.which(name)
    if not path:
        pkg = package or name
        raise StreamlearnError(f"{name} is not installed; install it with `sudo apt-get install -y {pkg}`")
    return path


def _font() -> str:
    for f in FONT_CANDIDATES:
        if Path(f).exists():
            return f
    raise StreamlearnError("no TrueType font found for captions; install it with "
                           "`sudo apt-get install -y fonts-dejavu-core`")


# ---------------------------------------------------------------------------------- speech
def speak(text: str, voice: str, pitch: int, speed: int, word_gap: int = 0) -> np.ndarray:
    """espeak-ng → float32 mono at SPEECH_RATE, leading/trailing silence trimmed."""
    require_tool("espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "u.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-g", str(word_gap),
                        "-w", str(wav_path), text],
                       check=True, capture_output=True)
        with wave.open(str(wav_path)) as w:
            assert w.getframerate() == SPEECH_RATE and w.getsampwidth() == 2
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    loud = np.flatnonzero(np.abs(pcm) > 0.02)
    return pcm[loud[0]: loud[-1] + 1] if len(loud) else pcm[:0]


def _word_times(utt: Utterance) -> list[Word]:
    """Word times spread over the utterance by length (espeak gives no word alignment)."""
    tokens = utt.text.split()
    weights = np.array([len(t) + 1 for t in tokens], dtype=float)
    edges = utt.start + np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum() * (utt.end - utt.start)
    return [Word(word=t, start=round(float(a), 3), end=round(float(b), 3))
            for t, a, b in zip(tokens, edges[:-1], edges[1:])]


def render_speech(day: Day, plan: TourPlan, rng: np.random.Generator) -> np.ndarray:
    """Place every utterance at its planned time (pushed later if a previous one ran long);
    utterances that no longer fit inside their scene are dropped from the plan."""
    total = int(day.duration_s * SPEECH_RATE) + 1
    track = np.zeros(total, dtype=np.float32)
    kept: list[Utterance] = []
    prev_end = 0.0
    for utt in day.utterances:
        voice = plan.speakers[utt.speaker]
        pcm = speak(utt.text, voice["voice"], voice["pitch"], voice["speed"], voice.get("word_gap", 0))
        dur = len(pcm) / SPEECH_RATE
        start = max(utt.start, prev_end + 0.5)
        scene_end = next(s.end for s in day.scenes if s.start <= utt.start < s.end)
        if start + dur > scene_end - 0.2:
            continue
        i0 = int(round(start * SPEECH_RATE))
        track[i0: i0 + len(pcm)] += 0.8 * pcm
        utt.start, utt.end = round(i0 / SPEECH_RATE, 3), round((i0 + len(pcm)) / SPEECH_RATE, 3)
        utt.words = _word_times(utt)
        kept.append(utt)
        prev_end = utt.end
    day.utterances = kept
    track += rng.normal(0.0, 0.003, size=total).astype(np.float32)  # faint room noise
    return np.clip(track, -1.0, 1.0)


def write_wav(path: Path, pcm: np.ndarray, rate: int = SPEECH_RATE) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((pcm * 32767).astype(np.int16).tobytes())


# ----------------------------------------------------------------------------------- video
def _hex(colour: str) -> str:
    return "0x" + colour.lstrip("#") if colour.startswith("#") else colour


def video_filter(day: Day, plan: TourPlan) -> str:
    """One lavfi graph: scene backgrounds, captions, sign, moving shape and a local-time clock."""
    font = _font()
    w, h = plan.width, plan.height
    parts = [f"color=c=0x101010:s={w}x{h}:r={plan.fps}:d={day.duration_s},format=yuv420p"]
    for s in day.scenes:
        on = f"enable='between(t,{s.start},{s.end - 0.001})'"
        for text in (s.city, s.venue, s.sign):
            if not all(c.isalnum() or c == " " for c in text):
                raise AssertionError(f"caption {text!r} needs escaping")
        parts += [
            f"drawbox=x=0:y=0:w=iw:h=ih:color={_hex(s.colour)}:t=fill:{on}",
            f"drawbox=x='mod(t*{40 + 10 * (len(s.venue) % 5)},iw)':y=ih*0.62:w=ih/6:h=ih/6:"
            f"color={s.shape_colour}:t=fill:{on}",
            f"drawtext=fontfile={font}:text='{s.city}':fontsize={h // 8}:fontcolor=white:x=w/30:y=h/20:{on}",
            f"drawtext=fontfile={font}:text='{s.venue}':fontsize={h // 16}:fontcolor=white:x=w/30:y=h/20+{h // 7}:{on}",
            f"drawbox=x=iw*0.52:y=ih*0.36:w=iw*0.44:h=ih/7:color=white:t=fill:{on}",
            f"drawtext=fontfile={font}:text='{s.sign}':fontsize={h // 14}:fontcolor=black:"
            f"x=w*0.54:y=h*0.36+h/28:{on}",
        ]
    local = datetime.fromisoformat(day.start_local)
    # gmtime of (local wall clock as if it were UTC) prints the local time of day
    epoch = int(local.replace(tzinfo=timezone.utc).timestamp())
    parts.append(f"drawtext=fontfile={font}:text='%{{pts\\:gmtime\\:{epoch}\\:%H\\\\\\:%M\\\\\\:%S}}':"
                 f"fontsize={h // 14}:fontcolor=yellow:x=w-tw-w/30:y=h/20")
    parts.append(f"drawtext=fontfile={font}:text='DAY {day.day}':fontsize={h // 18}:fontcolor=white:"
                 f"x=w/30:y=h-th-h/20")
    return ",".join(parts)


def encode(day: Day, plan: TourPlan, wav: Path, out: Path, variant: str, gop_seconds: float) -> None:
    require_tool("ffmpeg")
    gop = max(1, int(round(plan.fps * gop_seconds)))
    cmd = ["ffmpeg", "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", video_filter(day, plan), "-i", str(wav),
           "-map", "0:v", "-map", "1:a", "-shortest", "-metadata", f"creation_time={day.start_utc}",
           "-metadata", f"title=Day {day.day} {day.city}"]
    if variant == "mkv":
        cmd += ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1",
                "-b:v", "400k", "-g", str(gop), "-keyint_min", str(gop),
                "-c:a", "libopus", "-b:a", "64k", "-ar", "48000"]
    elif variant == "mp4":
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", str(gop),
                "-keyint_min", str(gop), "-sc_threshold", "0",
                "-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-movflags", "+faststart"]
    else:
        raise ValueError(f"unknown variant {variant!r}; use mkv or mp4")
    cmd.append(str(out))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StreamlearnError(f"ffmpeg failed rendering {out.name}: {proc.stderr.strip()[-300:]}")


def write_dash(day: Day, media: Path, out_dir: Path, variants: tuple[str, ...], segment_seconds: float = 4.0) -> None:
    """Stream-copy the variants into a DASH presentation (separate video and audio formats, as
    YouTube serves them), plus a text adaptation set pointing at the captions."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = ["ffmpeg", "-nostdin", "-y", "-v", "error"]
    for v in variants:
        cmd += ["-i", str(media / f"{day.video_id}.{v}")]
    n = len(variants)
    cmd += [a for i in range(n) for a in ("-map", f"{i}:v")] + [a for i in range(n) for a in ("-map", f"{i}:a")]
    video_ids = ",".join(str(i) for i in range(n))
    audio_ids = ",".join(str(n + i) for i in range(n))
    cmd += ["-c", "copy", "-f", "dash", "-seg_duration", str(segment_seconds), "-use_template", "1",
            "-use_timeline", "0", "-adaptation_sets", f"id=0,streams={video_ids} id=1,streams={audio_ids}",
            "-init_seg_name", "init-$RepresentationID$.m4s",
            "-media_seg_name", "seg-$RepresentationID$-$Number%05d$.m4s", str(out_dir / "manifest.mpd")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StreamlearnError(f"ffmpeg failed writing DASH for {day.video_id}: {proc.stderr.strip()[-300:]}")
    if day.captions:
        mpd = out_dir / "manifest.mpd"
        text = mpd.read_text(encoding="utf-8")
        track = (f'\t\t<AdaptationSet id="2" contentType="text" mimeType="text/vtt" lang="en">\n'
                 f'\t\t\t<Representation id="{2 * n}" bandwidth="256">'
                 f'<BaseURL>../../media/{day.video_id}.en.vtt</BaseURL></Representation>\n'
                 f'\t\t</AdaptationSet>\n\t</Period>')
        atomic_write_text(mpd, text.replace("\t</Period>", track, 1))


# -------------------------------------------------------------------------- side files
def _ts(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def auto_caption_vtt(day: Day) -> str:
    """YouTube auto-caption shape: each cue shows the previous line plus the new words with
    inline word timings, followed by a 10 ms cue repeating the finished line (rolling duplicates)."""
    out = ["WEBVTT", "Kind: captions", "Language: en", ""]
    prev_line = ""
    for utt in day.utterances:
        words = [w.word.lower().strip(".,?!") for w in utt.words]
        timed = words[0] + "".join(f"<{_ts(w.start)}><c> {t}</c>" for w, t in zip(utt.words[1:], words[1:]))
        out += [f"{_ts(utt.start)} --> {_ts(utt.end)} align:start position:0%", prev_line or " ", timed, ""]
        line = " ".join(words)
        out += [f"{_ts(utt.end)} --> {_ts(utt.end + 0.01)} align:start position:0%", line, " ", ""]
        prev_line = line
    return "\n".join(out) + "\n"


def info_json(day: Day, plan: TourPlan, variants: list[str]) -> dict:
    upload = datetime.fromtimestamp(day.release_timestamp, tz=timezone.utc)
    formats = []
    for v in variants:
        vc, ac = ("vp09.00.21.08", "opus") if v == "mkv" else ("avc1.64001e", "mp4a.40.2")
        formats.append({"format_id": f"{v}-{plan.height}p", "url": f"{{BASE}}/media/{day.video_id}.{v}",
                        "ext": v, "vcodec": vc, "acodec": ac, "width": plan.width, "height": plan.height,
                        "fps": plan.fps, "protocol": "http"})
    info = {
        "id": day.video_id, "title": day.title, "fulltitle": day.title, "description": day.description,
        "upload_date": upload.strftime("%Y%m%d"), "release_timestamp": day.release_timestamp,
        "timestamp": day.release_timestamp + int(day.duration_s), "duration": day.duration_s,
        "duration_string": _ts(day.duration_s)[:8], "channel": "SynthStreamer", "channel_id": "UCsynth0000",
        "uploader": "SynthStreamer", "webpage_url": f"{{BASE}}/watch/{day.video_id}.html",
        "thumbnail": f"{{BASE}}/media/{day.video_id}.jpg", "was_live": True, "live_status": "was_live",
        "width": plan.width, "height": plan.height, "fps": plan.fps, "tags": ["irl", "tour", day.city.lower()],
        "categories": ["People & Blogs"], "extractor": "generic", "extractor_key": "Generic", "formats": formats,
        "automatic_captions": ({"en": [{"ext": "vtt", "url": f"{{BASE}}/media/{day.video_id}.en.vtt"}]}
                               if day.captions else {}),
        "subtitles": {},
    }
    return info


def watch_page(day: Day, variants: list[str]) -> str:
    mime = {"mkv": 'video/x-matroska; codecs="vp9, opus"', "mp4": 'video/mp4; codecs="avc1.64001e, mp4a.40.2"'}
    sources = "\n".join(f'    <source src="{{BASE}}/media/{day.video_id}.{v}" type=\'{mime[v]}\'>' for v in variants)
    if day.captions:
        sources += f'\n    <track kind="captions" srclang="en" label="English" src="{{BASE}}/media/{day.video_id}.en.vtt">'
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{escape(day.title)}</title>\n"
            f"<meta property=\"og:title\" content=\"{escape(day.title)}\">\n"
            f"<meta property=\"og:description\" content=\"{escape(day.description)}\"></head>\n<body>\n"
            f"  <video controls poster=\"{{BASE}}/media/{day.video_id}.jpg\">\n{sources}\n  </video>\n</body></html>\n")


def rss_feed(plan: TourPlan) -> str:
    items = []
    for day in plan.days:
        pub = format_datetime(datetime.fromtimestamp(day.release_timestamp, tz=timezone.utc))
        items.append(
            f"<item><title>{escape(day.title)}</title><guid>{day.video_id}</guid><pubDate>{pub}</pubDate>"
            f"<description>{escape(day.description)}</description>"
            f"<enclosure url=\"{{BASE}}/dash/{day.video_id}/manifest.mpd\" type=\"application/dash+xml\" length=\"0\"/>"
            f"<itunes:duration>{int(day.duration_s)}</itunes:duration></item>")
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<rss version=\"2.0\" xmlns:itunes=\"http://www.itunes.com/dtds/podcast-1.0.dtd\"><channel>"
            f"<title>{escape(plan.subject)}</title><link>{{BASE}}/playlist.html</link>"
            f"<description>synthetic tour</description>\n" + "\n".join(items) + "\n</channel></rss>\n")


def playlist_page(plan: TourPlan, variants: list[str]) -> str:
    blocks = []
    for day in plan.days:
        src = "".join(f'<source src="{{BASE}}/media/{day.video_id}.{v}">' for v in variants)
        blocks.append(f"<h2>{escape(day.title)}</h2><video controls>{src}</video>")
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{escape(plan.subject)}</title></head>"
            "<body>\n" + "\n".join(blocks) + "\n</body></html>\n")


def flat_entry(day: Day, index: int) -> dict:
    """One line of a saved flat playlist (what `yt-dlp --flat-playlist -j` prints for YouTube)."""
    return {"_type": "url", "ie_key": "Generic", "id": day.video_id, "url": f"{{BASE}}/dash/{day.video_id}/manifest.mpd",
            "title": day.title, "duration": day.duration_s, "release_timestamp": day.release_timestamp,
            "timestamp": day.release_timestamp + int(day.duration_s), "channel": "SynthStreamer",
            "live_status": "was_live", "playlist_index": index}


# ----------------------------------------------------------------------------------- main
def synthesize(out: Path, days: int = 3, minutes: float = 2.0, seed: int = 0, speakers: int = 2,
               scene_seconds: float = 30.0, size: tuple[int, int] = (640, 360), fps: int = 30,
               gop_seconds: float = 2.0, variants: tuple[str, ...] = ("mkv", "mp4"),
               caption_days: str = "even") -> TourPlan:
    out = Path(out)
    truth_path = out / "ground_truth.json"
    if truth_path.exists():
        raise StreamlearnError(f"{out} already holds a synthetic tour; pick an empty folder or delete it")
    for v in variants:
        if v not in ("mkv", "mp4"):
            raise StreamlearnError(f"unknown variant {v!r}; use mkv and/or mp4")
    plan = plan_tour(days, minutes, seed=seed, speakers=speakers, scene_seconds=scene_seconds,
                     width=size[0], height=size[1], fps=fps, caption_days=caption_days)
    media = out / "media"
    (out / "watch").mkdir(parents=True, exist_ok=True)
    media.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for day in plan.days:
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "speech.wav"
            write_wav(wav, render_speech(day, plan, rng))
            for v in variants:
                encode(day, plan, wav, media / f"{day.video_id}.{v}", v, gop_seconds)
        subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-ss", str(min(5.0, day.duration_s / 2)),
                        "-i", str(media / f"{day.video_id}.{variants[-1]}"), "-frames:v", "1",
                        str(media / f"{day.video_id}.jpg")], check=True, capture_output=True)
        atomic_write_text(media / f"{day.video_id}.info.json",
                          json.dumps(info_json(day, plan, list(variants)), ensure_ascii=False, indent=1))
        if day.captions:
            atomic_write_text(media / f"{day.video_id}.en.vtt", auto_caption_vtt(day))
        write_dash(day, media, out / "dash" / day.video_id, tuple(variants))
        atomic_write_text(out / "watch" / f"{day.video_id}.html", watch_page(day, list(variants)))
        console.info(f"synth day {day.day}/{len(plan.days)} done {day.video_id} {day.city} "
                     f"({len(day.scenes)} scenes, {len(day.utterances)} utterances)")
    atomic_write_text(out / "playlist.rss", rss_feed(plan))
    atomic_write_text(out / "playlist.html", playlist_page(plan, list(variants)))
    atomic_write_text(out / "playlist_raw.jsonl", "".join(
        json.dumps(flat_entry(d, i), ensure_ascii=False) + "\n" for i, d in enumerate(plan.days, start=1)))
    # ground truth last: its presence means the tour is complete
    atomic_write_text(truth_path, json.dumps(plan.to_dict(), ensure_ascii=False, indent=1))
    return plan


def load_truth(out: Path) -> dict:
    path = Path(out) / "ground_truth.json"
    if not path.exists():
        raise StreamlearnError(f"{out} holds no synthetic tour (no ground_truth.json); make one with `streamlearn synth`")
    return json.loads(path.read_text(encoding="utf-8"))


def synth_command(out: Path, size: tuple[int, int], variants: list[str], serve: bool = False, port: int = 0,
                  **plan) -> None:
    """`streamlearn synth`: render a tour into `out` (unless it holds one), then serve it if asked."""
    if not (out / "ground_truth.json").exists():
        synthesize(out, size=size, variants=tuple(variants), **plan)
        print(f"tour written to {out}")
    elif not serve:
        raise StreamlearnError(f"{out} already holds a synthetic tour; pick an empty folder or add --serve")
    if serve:
        from streamlearn.testdata.loopback import LoopbackServer

        srv = LoopbackServer(out, port=port)
        print(f"serving {out} at {srv.base_url}/ (playlist: {srv.url('playlist.rss')}); Ctrl-C stops", flush=True)
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
