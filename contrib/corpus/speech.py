"""Recorded-like speech WAVs: espeak-ng reads the transcription, then a microphone's noise.

Synthetic tones (``wav.py``) compress far better than a real recording: a microphone adds a
broadband noise floor, mains hum and a DC offset, which is what keeps zstd at about 0.85 of
recorded speech. espeak-ng (Debian package ``espeak-ng``) gives real phonemes; the noise is
seeded, so the same segment always gives the same bytes on one espeak-ng version.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
import zlib
from array import array

import numpy

from .wav import wav_bytes


def espeak_pcm(text: str, voice: str = "en-us", wpm: int = 165) -> tuple[numpy.ndarray, int]:
    """(int16 samples, rate) of espeak-ng speaking ``text``."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("the realistic corpus needs espeak-ng (Debian package espeak-ng)")
    out = subprocess.run([exe, "-v", voice, "-s", str(wpm), "--stdout", text[:4000]], capture_output=True,
                         check=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        rate = w.getframerate()
        # espeak-ng streams with an open-ended data size: take every byte after the header
        samples = numpy.frombuffer(out[44:], "<i2")
    return samples, rate


def microphone(speech: numpy.ndarray, rate: int, seconds: float, seed: str, *, out_rate: int = 16000,
               noise_level: float = 0.05) -> numpy.ndarray:
    """``speech`` resampled to ``out_rate``, fitted to ``seconds`` (cut or padded with room noise),
    with a microphone's noise: a low-passed noise floor, 50 Hz hum and a small DC offset."""
    rng = numpy.random.default_rng(zlib.crc32(seed.encode()))
    n = round(out_rate * seconds)
    src = numpy.arange(round(len(speech) * out_rate / rate)) * rate / out_rate
    voice = numpy.interp(src, numpy.arange(len(speech)), speech.astype(numpy.float64))[:n] if len(speech) else src
    voice = numpy.pad(voice, (0, n - len(voice))) * rng.uniform(0.35, 0.7)
    floor = numpy.convolve(rng.normal(0, 60 + 1500 * noise_level, n), numpy.ones(3) / 3, "same")
    t = numpy.arange(n) / out_rate
    hum = rng.uniform(10, 40) * numpy.sin(2 * numpy.pi * 50 * t + rng.uniform(0, 6.28))
    return numpy.clip(voice + floor + hum + rng.uniform(-30, 30), -32768, 32767).astype(numpy.int16)


def speech_segment(seed: str, text: str, seconds: float, *, rate: int = 16000, noise_level: float = 0.05) -> bytes:
    """A mono 16-bit WAV of ``seconds``: ``text`` spoken (nothing if empty) over microphone noise."""
    if text.strip():
        pcm, src_rate = espeak_pcm(text)
    else:
        pcm, src_rate = numpy.zeros(0, numpy.int16), rate
    return wav_bytes(array("h", microphone(pcm, src_rate, seconds, seed, out_rate=rate,
                                           noise_level=noise_level).tobytes()), rate)
