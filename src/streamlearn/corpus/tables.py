"""The corpus's manifest schemas: `videos.csv` (one row per video) and `chunks.csv` (one per chunk)."""

from __future__ import annotations

from streamlearn.core.manifest import Column as C
from streamlearn.core.manifest import Table

VIDEOS = Table(
    name="videos",
    key="video_id",
    static=(
        C("title"),
        C("ascii_title"),
        C("url"),
        C("webpage_url"),
        C("source"),  # url | jsonl | dir
        C("playlist_index", "int"),
        C("upload_date"),  # YYYYMMDD
        C("release_timestamp", "int"),  # unix seconds, when the stream started
        C("start_source"),  # where release_timestamp came from when not the platform: container | file_mtime
        C("timestamp", "int"),
        C("duration_s", "float"),
        C("channel"),
        C("live_status"),
        C("day_index", "int"),  # 1-based day of the stream; editable
        C("timezone"),  # IANA name; editable
        C("local_path"),  # --from-dir: the recording this row came from
    ),
    stages={
        "download": (
            C("media_path"),
            C("media_bytes", "int"),
            C("media_sha256"),
            C("probe_duration_s", "float"),
            C("integrity"),  # ok | duration_mismatch | no_reference
            C("format_id"),
            C("vcodec"),
            C("acodec"),
            C("width", "int"),  # coded picture size
            C("height", "int"),
            C("rotation", "int"),  # display matrix, degrees counter-clockwise (phones: -90 / 90)
            C("sar", "float"),  # sample aspect ratio when not square
            C("fps", "float"),
            C("has_audio", "bool"),
            C("info_json"),
            C("subtitles"),
            C("creation_time"),
            C("train_media_path"),
        ),
        "transcribe": (
            C("transcript_source"),  # captions | asr
            C("transcript_path"),
            C("asr_model"),
            C("n_segments", "int"),
            C("n_words", "int"),
            C("speech_s", "float"),
            C("rtf", "float"),
        ),
        "diarize": (
            C("diarize_backend"),
            C("rttm_path"),
            C("speaker_transcript_path"),
            C("n_speakers", "int"),
        ),
        "chunk": (
            C("n_chunks", "int"),
            C("chunk_seconds", "float"),
        ),
    },
)

CHUNKS = Table(
    name="chunks",
    key="chunk_id",
    static=(
        C("video_id"),
        C("chunk_index", "int"),
        C("n_chunks", "int"),
        C("start_s", "float"),
        C("end_s", "float"),
        C("duration_s", "float"),
        # the length the video was cut at (chunk --merge carries it to videos.csv); older files lack it
        C("chunk_seconds", "float", added=True),
        C("media_uri"),
        C("bytes", "int"),
        C("sha256"),
        C("day_index", "int"),
        C("start_utc"),
        C("end_utc"),
        C("start_local"),
        C("end_local"),
        C("timezone"),
        C("time_source"),  # release_timestamp | timestamp | playlist | container | "" (unknown)
        C("title"),
        C("ascii_title"),
        C("transcript_path"),
        C("diarization_path"),
        C("node"),
    ),
    stages={
        "frames": (
            C("frames_path"),
            C("n_frames", "int"),
            C("sample_fps", "float"),
            C("frame_width", "int"),
            C("frame_height", "int"),
            C("vision_tokens", "int"),
        ),
        "describe": (
            C("description_path"),
            C("describe_backend"),
            C("describe_model"),
            C("prompt_tokens", "int"),
            C("completion_tokens", "int"),
            C("cost_usd", "float"),
        ),
        "rewrite": (
            C("rewrites_path"),
            C("rewrite_backend"),
            C("rewrite_model"),
            C("n_rewrites", "int"),
            C("rewrites_dropped", "int"),
        ),
    },
)

TABLES = {t.name: t for t in (VIDEOS, CHUNKS)}
