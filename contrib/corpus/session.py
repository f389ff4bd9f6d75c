"""Build one monolithic legacy session document (a dict) and its attachments."""

from __future__ import annotations

import dataclasses
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import orjson

from .png import CELL_W, CELL_H, render_screenshot
from .screen import ACTIVITIES, Desktop, layout, perceptual_hash
from .text import TextCorpus, load_corpus
from .speech import speech_segment
from .wav import render_segment


@dataclass(frozen=True)
class Profile:
    """Sizes of a generated session; every field can be overridden by keyword."""

    screenshots: int = 120
    audio_segments: int = 40
    video_chunks: int = 20
    context_items: int = 10
    relationships: int = 16
    ocr_lines: int = 780
    interval_s: int = 60
    summary_bytes: int = 50_000
    insights_bytes: int = 30_000
    canvas_bytes: int = 40_000
    transcript_bytes: int = 100_000
    context_item_bytes: int = 1_000
    static_share: float = 0.3
    png_width: int = 640
    png_height: int = 400
    png_noise_rows: int = 30
    png_level: int = 6
    wav_rate: int = 16000
    wav_seconds: tuple[float, float] = (3.5, 5.5)
    attachments: bool = True
    realistic: bool = False     # PNGs drawn by Pillow from TrueType text, WAVs spoken by espeak-ng


PROFILES = {
    "full": Profile(),
    "json-only": Profile(attachments=False),
    "small": Profile(screenshots=10, audio_segments=4, video_chunks=3, context_items=3,
                     relationships=6, ocr_lines=40, summary_bytes=4_000,
                     insights_bytes=3_000, canvas_bytes=4_000, transcript_bytes=6_000,
                     context_item_bytes=400, png_width=160, png_height=100,
                     png_noise_rows=8, wav_seconds=(0.5, 1.0)),
    # What real sessions hold: 1280x800 screenshots of real text and about 15 minutes of speech.
    "realistic": Profile(realistic=True, png_width=1280, png_height=800, wav_seconds=(15.0, 30.0)),
}

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
FIRST_DAY = datetime(2025, 1, 6, tzinfo=timezone.utc)
SESSIONS_PER_DAY = 3
TAGS = ("backend", "frontend", "bugfix", "refactor", "research", "meeting", "docs",
        "python", "testing", "deploy", "review", "planning", "performance",
        "security", "data", "infra", "onboarding", "oncall")
CATEGORIES = {
    "Development": ("Debugging", "Feature work", "Code review", "Refactoring", "Testing"),
    "Research": ("Reading docs", "Prototyping", "Benchmarking"),
    "Communication": ("Team chat", "Incident response", "Planning"),
    "Writing": ("Documentation", "Design doc", "Release notes"),
}
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
STATUSES = (("completed", 85), ("interrupted", 7), ("paused", 4), ("active", 4))
OPENERS = ("Okay, so", "Right,", "Hmm,", "So basically", "Wait,", "Alright,",
           "I think", "Let me see,", "Yeah,", "Now")
EMOTIONS = ("focused", "curious", "frustrated", "relieved", "confident", "uncertain")
CURIOSITY = ("routine edit", "new file opened", "error on screen", "context switch",
             "unusual activity", "long idle period", "test failure visible")


def iso(ms: int) -> str:
    """Milliseconds since the epoch as 2025-10-24T09:00:00.000Z."""
    return f"{EPOCH + timedelta(milliseconds=ms):%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _clock(ms: int) -> str:
    """A menu-bar clock (locale independent): Fri Oct 24  09:00:00."""
    d = EPOCH + timedelta(milliseconds=ms)
    return f"{DAYS[d.weekday()]} {MONTHS[d.month - 1]} {d:%d  %H:%M:%S}"


def new_id(rng: random.Random) -> str:
    """A version-4 UUID string drawn from rng (deterministic)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _text(rng: random.Random, corpus: TextCorpus, chars: int) -> str:
    parts, size = [], 0
    while size < chars:
        s = rng.choice(corpus.sentences)
        parts.append(s)
        size += len(s) + 1
    return " ".join(parts)


def _spoken(rng: random.Random, corpus: TextCorpus, chars: int) -> str:
    parts, size = [], 0
    while size < chars:
        s = rng.choice(corpus.sentences)
        if rng.random() < 0.3:
            s = f"{rng.choice(OPENERS)} {s[0].lower()}{s[1:]}"
        parts.append(s)
        size += len(s) + 1
    return " ".join(parts)


def _fill(make, target: int) -> list:
    """Call make() until the items' pretty-printed size reaches target bytes."""
    items, size = [], 0
    while size < target:
        item = make()
        items.append(item)
        size += len(orjson.dumps(item, option=orjson.OPT_INDENT_2)) + 8
    return items


def _vary(rng: random.Random, n: int) -> int:
    return max(1, round(n * rng.uniform(0.9, 1.1)))


@dataclass
class _Ctx:
    """Per-session state shared by the builders below."""

    rng: random.Random
    corpus: TextCorpus
    prof: Profile
    session_id: str
    start: int
    end: int

    def at(self, frac: float) -> str:
        return iso(self.start + int((self.end - self.start) * frac))

    def when(self) -> str:
        return self.at(self.rng.random())


class Shot(NamedTuple):
    """What a screenshot's PNG shows; same_as: index of an earlier identical shot."""

    lines: list[str]
    n_chrome: int
    theme: str
    noise_seed: int
    same_as: int | None


def _screenshots(c: _Ctx, n: int) -> tuple[list[dict], list[Shot]]:
    """Screenshot records plus, per record, what to render for its PNG."""
    rng, corpus = c.rng, c.corpus
    desktop = Desktop(rng, corpus, c.prof.ocr_lines)
    static = set(rng.sample(range(1, n), round((n - 1) * c.prof.static_share))) if n > 1 else set()
    records, renders, original = [], [], None
    for i in range(n):
        ms = c.start + i * c.prof.interval_s * 1000 + rng.randrange(1000)
        record = {"id": new_id(rng), "sessionId": c.session_id, "timestamp": iso(ms),
                  "sequenceNumber": i, "attachmentId": new_id(rng)}
        if i in static:
            prev = records[-1]
            record.update(analysis=prev["analysis"], isDuplicate=True,
                          duplicateOf=original["id"], perceptualHash=prev["perceptualHash"])
            renders.append(renders[-1]._replace(same_as=i - 1))
        else:
            scene = desktop.step()
            clock = _clock(ms)
            lines = scene.lines(clock)
            record.update(analysis=_analysis(rng, corpus, scene, lines), isDuplicate=False,
                          duplicateOf=None, perceptualHash=perceptual_hash(lines))
            renders.append(Shot(lines, len(scene.chrome), scene.theme, scene.noise_seed, None))
            original = record
        records.append(record)
    return records, renders


def _analysis(rng: random.Random, corpus: TextCorpus, scene, lines: list[str]) -> dict:
    activity = rng.choice(ACTIVITIES[scene.kind])
    summary = f"{activity.capitalize()} in {scene.app}: {scene.title}. " + _text(
        rng, corpus, rng.randrange(250, 700))
    return {"summary": summary, "detectedActivity": activity, "extractedText": lines,
            "keyElements": [scene.app, scene.title, *rng.sample(corpus.words, rng.randint(4, 12))],
            "confidence": round(rng.uniform(0.6, 0.99), 2),
            "curiosity": round(rng.random(), 2), "curiosityReason": rng.choice(CURIOSITY)}


def _audio_segments(c: _Ctx, n: int) -> list[dict]:
    rng, segs = c.rng, []
    per = c.prof.transcript_bytes // max(1, n)
    for j in range(n):
        empty = rng.random() < 0.06
        seconds = round(rng.uniform(*c.prof.wav_seconds), 2)
        segs.append({
            "id": new_id(rng), "sessionId": c.session_id,
            "timestamp": c.at((j + rng.random() * 0.8) / n),
            "duration": seconds,
            "transcription": "" if empty else _spoken(rng, c.corpus, int(per * rng.uniform(0.8, 1.2))),
            "attachmentId": new_id(rng),
            "speakerConfidence": 0.0 if empty else round(rng.uniform(0.7, 0.98), 2),
            "noiseLevel": round(rng.uniform(0.01, 0.12), 2), "isEmpty": empty})
    return segs


def _video(c: _Ctx, n: int, shots: list[dict]) -> dict:
    rng, dur = c.rng, (c.end - c.start) / 1000
    base = f"videos/{c.session_id}"
    chunks = [{"id": f"vc-{k}", "startTime": round(dur * k / n, 3),
               "endTime": round(dur * (k + 1) / n, 3), "path": f"{base}/{k}.mp4",
               "topic": " ".join(rng.sample(c.corpus.words, 2)).replace("_", " "),
               "summary": _text(rng, c.corpus, 120),
               "thumbnailScreenshotId": shots[min(len(shots) - 1, k * len(shots) // n)]["id"]}
              for k in range(n)]
    return {"path": f"{base}.mp4", "optimizedPath": f"{base}-optimized.mp4",
            "duration": round(dur, 3), "chunks": chunks}


def _summary(c: _Ctx, shots: list[dict]) -> dict:
    rng, corpus, s = c.rng, c.corpus, c.prof.summary_bytes
    ids = [r["id"] for r in shots]

    def sentence() -> str:
        return rng.choice(corpus.sentences)
    return {
        "narrative": _text(rng, corpus, s * 12 // 100),
        "achievements": _fill(sentence, s * 6 // 100),
        "blockers": _fill(sentence, s * 3 // 100),
        "insights": _fill(sentence, s * 6 // 100),
        "keyMoments": _fill(lambda: {"timestamp": c.when(), "description": _text(rng, corpus, 150),
                                     "screenshotIds": rng.sample(ids, min(len(ids), 2)),
                                     "importance": rng.choice(("high", "medium", "low"))},
                            s * 20 // 100),
        "recommendedTasks": _fill(lambda: {"title": sentence()[:60], "description": _text(rng, corpus, 200),
                                           "priority": rng.choice(("high", "medium", "low")),
                                           "estimatedMinutes": rng.choice((15, 30, 60, 120))},
                                  s * 15 // 100),
        "timeline": _fill(lambda: {"startTime": c.when(), "endTime": c.when(),
                                   "activity": rng.choice(("coding", "reading-docs", "debugging",
                                                           "communicating")),
                                   "description": _text(rng, corpus, 180)}, s * 20 // 100),
        "keyLearnings": _fill(sentence, s * 8 // 100),
        "focusAreas": [{"area": w, "minutes": rng.randrange(5, 60)}
                       for w in rng.sample(corpus.words, 5)],
        "generatedAt": iso(c.end + 120_000), "model": "summary-v3",
    }


def _audio_insights(c: _Ctx, segs: list[dict]) -> dict:
    rng, corpus, a = c.rng, c.corpus, c.prof.insights_bytes
    seg_ids = [s["id"] for s in segs]
    return {
        "narrative": _text(rng, corpus, a * 15 // 100),
        "emotionalJourney": _fill(lambda: {"timestamp": c.when(), "emotion": rng.choice(EMOTIONS),
                                           "intensity": round(rng.random(), 2),
                                           "trigger": _text(rng, corpus, 80)}, a * 30 // 100),
        "keyMoments": _fill(lambda: {"timestamp": c.when(), "type": rng.choice(("decision", "insight",
                                                                                "blocker", "question")),
                                     "description": _text(rng, corpus, 100),
                                     "quote": rng.choice(corpus.sentences),
                                     "segmentId": rng.choice(seg_ids)}, a * 30 // 100),
        "workPatterns": {
            "flowStates": _fill(lambda: {"start": c.when(), "end": c.when(),
                                         "score": round(rng.random(), 2),
                                         "description": _text(rng, corpus, 90)}, a * 15 // 100),
            "interruptions": rng.randrange(0, 12), "focusScore": round(rng.random(), 2)},
        "environment": {"ambientNoise": rng.choice(("quiet", "moderate", "noisy")),
                        "soundscape": rng.choice(corpus.sentences)},
        "processedAt": iso(c.end + 60_000), "model": "audio-review-v2",
    }


def _canvas(c: _Ctx, shots: list[dict]) -> dict:
    rng, corpus, cb = c.rng, c.corpus, c.prof.canvas_bytes
    ids = [r["id"] for r in shots]

    def section(kind: str, body: dict) -> dict:
        return {"id": new_id(rng), "type": kind, "title": rng.choice(corpus.sentences)[:50], **body}
    code = rng.choice(corpus.files)
    pos = rng.randrange(len(code.lines))
    sections = [section("hero", {"content": _text(rng, corpus, 400)}),
                section("screenshots", {"ids": ids}),
                section("code", {"language": "python", "path": code.path,
                                 "lines": list(code.lines[pos:pos + 30])})]
    sections += _fill(lambda: section(rng.choice(("markdown", "timeline", "insights", "quotes")), {
        "content": _text(rng, corpus, 500),
        "items": [{"label": rng.choice(corpus.words), "timestamp": c.when(),
                   "screenshotId": rng.choice(ids)} for _ in range(rng.randint(1, 4))]}),
        max(0, cb - 2_000 - 50 * len(ids)))
    return {"version": 2, "layout": "timeline",
            "theme": {"primary": "#%06x" % rng.getrandbits(24), "mode": rng.choice(("light", "dark"))},
            "sections": sections}


def _context_items(c: _Ctx, n: int) -> list[dict]:
    rng, corpus, items = c.rng, c.corpus, []
    for k in range(n):
        kind = rng.choice(("link", "note", "file", "snippet"))
        f = rng.choice(corpus.files)
        where = (f"https://docs.python.org/3/library/{f.path[4:-3]}.html" if kind == "link"
                 else f.path)
        items.append({"id": f"ctx-{k + 1}", "type": kind, "title": rng.choice(corpus.sentences)[:70],
                      "content": _text(rng, corpus, c.prof.context_item_bytes - 250),
                      "source": where, "timestamp": c.when(),
                      "addedBy": rng.choice(("user", "auto"))})
    return items


def _stage(rng: random.Random, done: bool, at: str) -> dict:
    return {"status": "completed" if done else "pending", "completedAt": at if done else None,
            "cost": round(rng.uniform(0.001, 0.05), 4) if done else 0, "error": None}


def _relationship(c: _Ctx) -> dict:
    rng = c.rng
    kind = rng.choice(("topic", "task", "note", "session"))
    return {"id": new_id(rng), "type": kind,
            "targetId": new_id(rng) if kind != "topic" else f"topic-{rng.choice(c.corpus.words)}",
            "targetType": kind, "strength": round(rng.random(), 2),
            "createdAt": c.when(), "createdBy": rng.choice(("ai", "user")),
            "metadata": {"reason": rng.choice(c.corpus.sentences)}}


def _start_ms(rng: random.Random, index: int) -> int:
    weekday = index // SESSIONS_PER_DAY
    day = FIRST_DAY + timedelta(days=weekday // 5 * 7 + weekday % 5)
    slot = index % SESSIONS_PER_DAY
    minute = (8 + slot * 3) * 60 + rng.randrange(0, 150)
    return int((day - EPOCH).total_seconds() * 1000) + minute * 60_000 + rng.randrange(60_000)


def _header(c: _Ctx, status: str, topics: list[str]) -> dict:
    """Identity, lifecycle, configuration, references and classification."""
    rng, corpus = c.rng, c.corpus
    paused = rng.choice((0, 0, 0, rng.randrange(60_000, 900_000)))
    category = rng.choice(sorted(CATEGORIES))
    return {
        "id": c.session_id,
        "name": f"{rng.choice(('Fix', 'Refactor', 'Investigate', 'Document', 'Review', 'Add'))} "
                f"{rng.choice(corpus.words)} in {rng.choice(corpus.files).path[4:-3]}",
        "description": rng.choice(corpus.sentences),
        "status": status, "startTime": iso(c.start),
        "endTime": None if status == "active" else iso(c.end),
        "lastScreenshotTime": None, "pausedAt": iso(c.end) if status == "paused" else None,
        "totalPausedTime": paused,
        "screenshotInterval": c.prof.interval_s, "autoAnalysis": True, "enableScreenshots": True,
        "audioMode": rng.choice(("transcription", "description")),
        "audioRecording": True, "videoRecording": True,
        "audioConfig": {"sourceType": rng.choice(("microphone", "both")),
                        "micDeviceId": new_id(rng), "systemAudioDeviceId": new_id(rng),
                        "balance": rng.randrange(0, 101), "micVolume": 0.8, "systemVolume": 0.6,
                        "sampleRate": c.prof.wav_rate, "channels": 1, "vadEnabled": True,
                        "vadThreshold": 0.5, "segmentDuration": 30, "language": "en-US"},
        "videoConfig": {"sourceType": "display", "displayIds": [str(rng.randrange(1, 4))],
                        "windowIds": [], "quality": rng.choice(("low", "medium", "high")),
                        "fps": 15, "resolution": {"width": 1920, "height": 1080},
                        "codec": "h264", "webcamEnabled": False},
        "trackingNoteId": rng.choice((None, new_id(rng))),
        "extractedTaskIds": [new_id(rng) for _ in range(rng.randint(3, 15))],
        "extractedNoteIds": [new_id(rng) for _ in range(rng.randint(1, 8))],
        "relationships": [_relationship(c) for _ in range(_vary(rng, c.prof.relationships))],
        "tags": rng.sample(TAGS, rng.randint(2, 6)),
        "topicIds": topics,
        "category": category, "subCategory": rng.choice(CATEGORIES[category]),
        "activityType": rng.choice(("coding", "reading-docs", "debugging", "meeting", "writing")),
        "totalDuration": c.end - c.start - paused,
    }


def _enrichment(c: _Ctx, status: str) -> dict:
    rng, done = c.rng, status == "completed"
    at = iso(c.end + 300_000)
    stages = {k: _stage(rng, done, at) for k in ("audio", "video", "summary", "canvas")}
    return {
        "enrichmentStatus": {"status": "completed" if done else "pending",
                             "startedAt": iso(c.end + 10_000) if done else None,
                             "completedAt": at if done else None, **stages,
                             "totalCost": round(sum(s["cost"] for s in stages.values()), 4),
                             "errors": [], "warnings": [], "canResume": not done},
        "enrichmentConfig": {"includeAudioReview": True, "includeVideoChapters": True,
                             "generateCanvas": True, "maxCost": 0.5, "language": "en"},
        "enrichmentLock": (None if done or status == "active" else
                           {"lockedBy": new_id(rng), "lockedAt": at,
                            "expiresAt": iso(c.end + 900_000)}),
    }


def resolve_profile(profile: str | Profile, **overrides) -> Profile:
    """A Profile by name (full, json-only, small) with keyword overrides applied."""
    base = profile if isinstance(profile, Profile) else PROFILES.get(profile)
    if base is None:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    return dataclasses.replace(base, **overrides) if overrides else base


def _topics(seed: int, corpus: TextCorpus) -> list[str]:
    pool = list(corpus.words)
    random.Random(f"topics:{seed}").shuffle(pool)
    return [f"topic-{w}" for w in pool[:40]]


def build_session(seed: int, index: int, prof: Profile) -> tuple[dict, list[Shot], list[dict]]:
    """The session dict plus the render plans of its screenshots and segments."""
    corpus = load_corpus()
    rng = random.Random(f"sessionfs-corpus:{seed}:{index}")
    session_id = new_id(rng)
    start = _start_ms(rng, index)
    n_shots = _vary(rng, prof.screenshots)
    c = _Ctx(rng, corpus, prof, session_id, start, start + n_shots * prof.interval_s * 1000)
    status = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES])[0]
    topics = rng.sample(_topics(seed, corpus), rng.randint(1, 4))
    session = _header(c, status, topics)
    shots, renders = _screenshots(c, n_shots)
    segs = _audio_segments(c, _vary(rng, prof.audio_segments))
    session["lastScreenshotTime"] = shots[-1]["timestamp"]
    enrichment = _enrichment(c, status)
    session.update(
        screenshots=shots, audioSegments=segs,
        video=_video(c, _vary(rng, prof.video_chunks), shots),
        summary=_summary(c, shots), audioInsights=_audio_insights(c, segs),
        canvasSpec=_canvas(c, shots),
        fullTranscription=" ".join(s["transcription"] for s in segs if not s["isEmpty"]),
        contextItems=_context_items(c, _vary(rng, prof.context_items)),
        **enrichment, version=rng.randint(3, 40), createdAt=iso(start),
        updatedAt=iso(c.end + rng.randrange(300_000, 3_600_000)))
    return session, renders, segs


def render_attachments(session: dict, renders: list[Shot], segs: list[dict],
                       prof: Profile) -> dict[str, bytes]:
    """PNG per screenshot (static ones repeat the previous bytes), WAV per segment."""
    files: dict[str, bytes] = {}
    pngs: list[bytes] = []
    rows = max(2, (prof.png_height - prof.png_noise_rows) // CELL_H)
    for record, shot in zip(session["screenshots"], renders):
        if shot.same_as is None and prof.realistic:
            from .pillow_png import LINE_H, render_text_png     # Pillow: the bench extra
            text = layout(shot.lines, shot.n_chrome, (prof.png_height - 36) // LINE_H, (prof.png_width - 20) // 8)
            data = render_text_png(text, theme=shot.theme, width=prof.png_width, height=prof.png_height)
        elif shot.same_as is None:
            text = layout(shot.lines, shot.n_chrome, rows, prof.png_width // CELL_W)
            data = render_screenshot(text, theme=shot.theme, noise_seed=shot.noise_seed,
                                     width=prof.png_width, height=prof.png_height,
                                     noise_rows=prof.png_noise_rows, level=prof.png_level)
        else:
            data = pngs[shot.same_as]
        pngs.append(data)
        files[record["attachmentId"] + ".png"] = data
    for seg in segs:
        if prof.realistic:
            files[seg["attachmentId"] + ".wav"] = speech_segment(
                seg["attachmentId"], seg["transcription"], seg["duration"], rate=prof.wav_rate,
                noise_level=seg["noiseLevel"])
            continue
        files[seg["attachmentId"] + ".wav"] = render_segment(
            seg["attachmentId"], seg["duration"], rate=prof.wav_rate,
            noise_level=seg["noiseLevel"], talk=not seg["isEmpty"])
    return files
