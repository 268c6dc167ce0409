"""Real recordings that nobody here made, from public packages, for tests and benchmarks.

- Debian `asterisk-core-sounds-*-wav`: telephone prompts read by different real people, each
  with hundreds of files (en_US Allison with the reference text of every prompt in
  `asterisk-core-sounds-en`'s core-sounds-en.txt; fr_CA June; it_IT Carlo; ru_RU; Debian's
  `asterisk-prompt-it-menardi-wav`).
- Debian `codec2-examples`: short real speech samples of several people (8 kHz raw).
- PyPI `pyannote.audio` (the wheel, never installed): `sample.wav`, a real two-speaker
  conversation, with its reference `sample.rttm`.

`conversation()` builds a phone-call-like recording with known turns from two voices: turns of
one to three prompts, short pauses (often too short for VAD to split), the reference RTTM from
where each prompt's speech starts and ends. Which voices tune the diarizer and which measure it
is fixed in `TUNING_VOICES` / `MEASURED_VOICES` (never the same person).
"""

from __future__ import annotations

import gzip
import random
import re
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamlearn.core.errors import StreamlearnError

SOUNDS = Path("/usr/share/asterisk/sounds")
VOICES = {  # name -> (Debian package, folder under /usr/share/asterisk/sounds)
    "allison_en": ("asterisk-core-sounds-en-wav", "en_US_f_Allison"),
    "june_fr": ("asterisk-core-sounds-fr-wav", "fr_CA_f_June"),
    "carlo_it": ("asterisk-core-sounds-it-wav", "it_IT_m_Carlo"),
    "ivr_ru": ("asterisk-core-sounds-ru-wav", "ru_RU_f_IvrvoiceRU"),
    "menardi_it": ("asterisk-prompt-it-menardi-wav", "it_IT_f_Menardi"),
}
TUNING_VOICES = ("ivr_ru", "menardi_it")  # the diarizer's defaults were chosen on these only
MEASURED_VOICES = ("allison_en", "carlo_it", "june_fr")  # DER is reported on these (and pyannote's call)
PROMPT_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
PYANNOTE_WHEEL = "pyannote.audio==4.0.7"
RATE = 8000  # telephone


def _need(package: str, path: Path) -> Path:
    if not path.exists():
        raise StreamlearnError(f"{path} is missing; install the Debian package: apt-get install -y {package} "
                               "(scripts/system_deps.sh does)")
    return path


def voice_files(name: str) -> list[Path]:
    package, folder = VOICES[name]
    root = _need(package, SOUNDS / folder)
    files = sorted(p for p in root.rglob("*.wav") if p.stat().st_size > 16000)
    return files


def prompt_texts() -> dict[str, str]:
    """Allison's English prompts: file stem -> the words she reads (bracketed sound notes dropped)."""
    text = gzip.open(_need("asterisk-core-sounds-en", PROMPT_TEXT), "rt", encoding="utf-8", errors="replace").read()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([\w/-]+):\s*(.+)$", line.strip())
        if m and "[" not in m.group(2):
            out[m.group(1)] = m.group(2).strip()
    return out


def read_prompts(min_words: int = 8) -> list[tuple[Path, str]]:
    """(wav, reference text) of Allison's prompts with at least `min_words` words."""
    texts = prompt_texts()
    root = _need("asterisk-core-sounds-en-wav", SOUNDS / "en_US_f_Allison")
    out = []
    for stem, text in sorted(texts.items()):
        wav = root / f"{stem}.wav"
        if wav.exists() and len(text.split()) >= min_words:
            out.append((wav, text))
    return out


def load(path: Path, rate: int = RATE) -> np.ndarray:
    """Mono float32 at `rate` (ffmpeg)."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(out, np.int16).astype(np.float32) / 32768.0


def speech_extent(x: np.ndarray, rate: int = RATE, floor_db: float = -38.0) -> tuple[int, int]:
    """First and last sample of speech: 10 ms frames louder than `floor_db` below the peak."""
    hop = rate // 100
    n = len(x) // hop
    if n == 0:
        return 0, len(x)
    e = 10 * np.log10((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1) + 1e-12)
    loud = np.flatnonzero(e > e.max() + floor_db)
    if not len(loud):
        return 0, len(x)
    return int(loud[0] * hop), int((loud[-1] + 1) * hop)


def speech_spans(x: np.ndarray, rate: int = RATE, floor_db: float = -38.0, min_pause_s: float = 0.25) -> list[tuple[int, int]]:
    """Sample spans of speech in a trimmed prompt: loud 10 ms frames, split at pauses >= `min_pause_s`
    (a prompt read as two phrases is two spans, so the reference does not count its pause as speech)."""
    hop = rate // 100
    n = len(x) // hop
    if n == 0:
        return [(0, len(x))]
    e = 10 * np.log10((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1) + 1e-12)
    loud = np.flatnonzero(e > e.max() + floor_db)
    if not len(loud):
        return [(0, len(x))]
    spans, start, last = [], loud[0], loud[0]
    for f in loud[1:]:
        if (f - last) * hop / rate >= min_pause_s:
            spans.append((int(start * hop), int((last + 1) * hop)))
            start = f
        last = f
    spans.append((int(start * hop), int((last + 1) * hop)))
    return spans


def write_wav(path: Path, x: np.ndarray, rate: int = RATE) -> Path:
    import wave

    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


@dataclass
class Conversation:
    audio: np.ndarray
    rate: int
    turns: list[tuple[float, float, str]]  # reference (start, end, speaker), speech only

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.rate

    def rttm(self, file_id: str) -> str:
        return "".join(f"SPEAKER {file_id} 1 {a:.3f} {b - a:.3f} <NA> <NA> {s} <NA> <NA>\n" for a, b, s in self.turns)


def conversation(voices: tuple[str, ...], seconds: float = 90.0, seed: int = 0, rate: int = RATE) -> Conversation:
    """A phone-call-like recording of `voices` taking turns (1-3 prompts a turn, 0.15-0.6 s between
    turns, 0.05-0.25 s between prompts of a turn), about `seconds` long, with its reference turns."""
    rng = random.Random(seed)
    pools = {v: voice_files(v) for v in voices}
    for v in pools:
        rng.shuffle(pools[v])
    pos = {v: 0 for v in voices}
    parts: list[np.ndarray] = [np.zeros(int(0.5 * rate), np.float32)]
    t = 0.5
    turns = []
    who = 0
    while t < seconds:
        v = voices[who % len(voices)]
        for j in range(rng.randint(1, 3)):
            x = load(pools[v][pos[v] % len(pools[v])], rate)
            pos[v] += 1
            a, b = speech_extent(x, rate)
            x = x[a:b]
            x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.3, 0.7)
            if j:
                gap = rng.uniform(0.05, 0.25)
                parts.append(np.zeros(int(gap * rate), np.float32))
                t += gap
            for s0, s1 in speech_spans(x, rate):
                turns.append((round(t + s0 / rate, 3), round(t + s1 / rate, 3), v))
            parts.append(x.astype(np.float32))
            t += len(x) / rate
        gap = rng.uniform(0.15, 0.6)
        parts.append(np.zeros(int(gap * rate), np.float32))
        t += gap
        who += 1
    audio = np.concatenate(parts)
    audio = audio + np.random.default_rng(seed).normal(0, 0.002, len(audio)).astype(np.float32)  # line hiss
    merged: list[list] = []
    for a, b, s in turns:  # prompts of one turn are one reference turn
        if merged and merged[-1][2] == s and a - merged[-1][1] < 0.3:
            merged[-1][1] = b
        else:
            merged.append([a, b, s])
    return Conversation(audio, rate, [(a, b, s) for a, b, s in merged])


def pyannote_sample(cache: Path | None = None) -> tuple[Path, Path]:
    """(sample.wav, sample.rttm) from the pyannote.audio wheel on PyPI (downloaded, not installed)."""
    cache = Path(cache or Path(tempfile.gettempdir()) / "streamlearn-realdata")
    wav, rttm = cache / "pyannote_sample.wav", cache / "pyannote_sample.rttm"
    if wav.exists() and rttm.exists():
        return wav, rttm
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["python3", "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, PYANNOTE_WHEEL],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            proc = subprocess.run([str(Path(__import__("sys").executable)), "-m", "pip", "download", "-q",
                                   "--no-deps", "-d", tmp, PYANNOTE_WHEEL], capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise StreamlearnError(f"cannot download {PYANNOTE_WHEEL} from PyPI: {proc.stderr.strip()[-200:]}")
        with zipfile.ZipFile(wheels[0]) as z:
            wav.write_bytes(z.read("pyannote/audio/sample/sample.wav"))
            rttm.write_bytes(z.read("pyannote/audio/sample/sample.rttm"))
    return wav, rttm
