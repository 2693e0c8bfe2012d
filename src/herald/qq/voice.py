"""Voice clips as QQ plays them: SILK (the Tencent flavour, starting `\\x02#!SILK_V3`).

A clip that is already SILK is sent as it is. Anything else is decoded to 16-bit mono PCM and
encoded with the `silk-python` package (the `voice` extra: `pip install 'herald[voice]'`):
a 16-bit PCM WAV is decoded by the standard library; every other format (MP3, OGG, M4A, other
WAV encodings) by `ffmpeg` when it is on PATH. When a step is missing, `VoiceError` says which
and how to install it; nothing is sent in a format the platform may not play.
"""

from __future__ import annotations

import array
import io
import shutil
import subprocess
import sys
import wave
from collections.abc import Callable

SILK_MAGIC = b"#!SILK_V3"
# The sample rates the SILK encoder takes; anything else is resampled (by ffmpeg) to RATE.
SILK_RATES = frozenset({8000, 12000, 16000, 24000, 32000, 44100, 48000})
RATE = 24000
BIT_RATE = 24000
FFMPEG_TIMEOUT_S = 120.0
INSTALL_EXTRA = "pip install 'herald[voice]'"


class VoiceError(Exception):
    """The clip cannot be made into SILK here; the message says why and what to install."""


def is_silk(head: bytes) -> bool:
    return head.startswith(SILK_MAGIC) or head.startswith(b"\x02" + SILK_MAGIC)


def to_silk(data: bytes, name: str) -> bytes:
    """The clip as SILK (blocking and CPU-bound: run it in a thread)."""
    if is_silk(data):
        return data
    encoder = _encoder()
    pcm, rate = _decode(data, name)
    if not pcm:
        raise VoiceError(f"{name} holds no audio samples")
    out = io.BytesIO()
    try:
        encoder(io.BytesIO(pcm), out, rate, BIT_RATE)
    except Exception as exc:  # the encoder's own error type varies by backend
        raise VoiceError(f"the SILK encoder refused {name}: {exc}") from None
    return out.getvalue()


def can_convert() -> str | None:
    """None when voice conversion works here, else what is missing (for `herald doctor`, docs)."""
    try:
        _encoder()
    except VoiceError as exc:
        return str(exc)
    return None


def _encoder() -> Callable[..., object]:
    try:
        import pysilk  # type: ignore[import-untyped,unused-ignore]  # the silk-python distribution
    except ImportError:
        raise VoiceError(
            f"converting to SILK needs the silk-python package, which is not installed ({INSTALL_EXTRA})"
        ) from None
    encode: Callable[..., object] = pysilk.encode
    return encode


def _decode(data: bytes, name: str) -> tuple[bytes, int]:
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        decoded = _wav(data)
        if decoded is not None:
            return decoded
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        what = "this WAV encoding" if data[:4] == b"RIFF" else f"{name}"
        raise VoiceError(
            f"converting {what} to SILK needs ffmpeg, which is not installed here (install ffmpeg, "
            "e.g. apt-get install ffmpeg; or send a 16-bit PCM WAV or a SILK file)"
        )
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-i", "pipe:0"]
    command += ["-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", str(RATE), "pipe:1"]
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise VoiceError(f"ffmpeg took over {FFMPEG_TIMEOUT_S:g} s to decode {name}") from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise VoiceError(f"ffmpeg could not decode {name}: {detail[-1] if detail else done.returncode}")
    return done.stdout, RATE


def _wav(data: bytes) -> tuple[bytes, int] | None:
    """16-bit PCM WAV at a rate SILK takes, first channel only; None for anything else."""
    try:
        with wave.open(io.BytesIO(data)) as clip:
            if clip.getsampwidth() != 2 or clip.getframerate() not in SILK_RATES:
                return None
            channels, rate = clip.getnchannels(), clip.getframerate()
            frames = clip.readframes(clip.getnframes())
    except (wave.Error, EOFError):
        return None
    if channels == 1:
        return frames, rate
    samples = array.array("h")
    samples.frombytes(frames)
    if sys.byteorder != "little":
        samples.byteswap()
    mono = samples[::channels]
    if sys.byteorder != "little":
        mono.byteswap()
    return mono.tobytes(), rate
