"""Speech-like 16-bit mono PCM WAV segments (deterministic, stdlib only)."""

from __future__ import annotations

import functools
import math
import operator
import random
import struct
import sys
from array import array

SYLLABLES = 48


def wav_bytes(samples: array, rate: int) -> bytes:
    """Wrap int16 samples in a canonical 44-byte RIFF/WAVE header."""
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    data = samples.tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE",
                         b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16, b"data", len(data))
    return header + data


def _voiced(rng: random.Random, rate: int) -> array:
    n = int(rate * rng.uniform(0.08, 0.28))
    f0, f1 = rng.uniform(95, 230), rng.uniform(95, 230)
    weights = [rng.uniform(0.2, 1.0) / h for h in range(1, 6)]
    peak = rng.uniform(5000, 14000) / sum(weights)
    out, phase = array("h"), 0.0
    for i in range(n):
        t = i / n
        phase += 2 * math.pi * (f0 + (f1 - f0) * t) / rate
        env = math.sin(math.pi * t) ** 2
        value = sum(w * math.sin(h * phase) for h, w in enumerate(weights, 1))
        out.append(int(peak * env * value))
    return out


def _unvoiced(rng: random.Random, rate: int) -> array:
    n = int(rate * rng.uniform(0.05, 0.15))
    peak = rng.uniform(1500, 4000)
    return array("h", (int(peak * math.sin(math.pi * i / n) * rng.uniform(-1, 1))
                       for i in range(n)))


@functools.lru_cache(maxsize=4)
def syllables(rate: int) -> tuple[array, ...]:
    """A fixed library of voiced (tone) and unvoiced (noise burst) syllables."""
    rng = random.Random(f"syllables:{rate}")
    return tuple(_unvoiced(rng, rate) if rng.random() < 0.2 else _voiced(rng, rate)
                 for _ in range(SYLLABLES))


def _speech(rng: random.Random, rate: int, frames: int, talk: bool) -> array:
    lib = syllables(rate)
    out = array("h")
    while len(out) < frames:
        if talk:
            for _ in range(rng.randint(1, 4)):
                out.extend(lib[rng.randrange(len(lib))])
                out.extend(array("h", bytes(2 * int(rate * rng.uniform(0, 0.03)))))
        pause = rng.uniform(0.3, 0.8) if rng.random() < 0.2 else rng.uniform(0.06, 0.25)
        out.extend(array("h", bytes(2 * int(rate * pause))))
    del out[frames:]
    return out


def render_segment(seed: str, seconds: float, *, rate: int = 16000,
                   noise_level: float = 0.05, talk: bool = True) -> bytes:
    """A WAV of words and pauses over a noise floor; silent floor if not talk."""
    rng = random.Random(seed)
    frames = round(rate * seconds)
    speech = _speech(rng, rate, frames, talk)
    amp = max(1, min(127, int(noise_level * 1200)))
    table = bytes(((b % (2 * amp + 1)) - amp) & 0xFF for b in range(256))
    noise = array("b", rng.randbytes(frames).translate(table))
    return wav_bytes(array("h", map(operator.add, speech, noise)), rate)
