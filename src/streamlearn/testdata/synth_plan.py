"""What a synthetic tour contains: cities, scenes, on-screen text and who says what, when.

Pure and seeded: the same (days, minutes, seed, speakers) always gives the same plan. The
renderer (`synth.py`) turns a plan into media; the plan itself is the ground truth.
"""

from __future__ import annotations

import random
import string
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

# city, state, IANA timezone, venues (on-screen captions are upper-case ASCII for drawtext)
CITIES = [
    ("MIAMI", "Florida", "America/New_York", ["OCEAN DRIVE", "LITTLE HAVANA", "WYNWOOD WALLS", "SOUTH BEACH"]),
    ("ATLANTA", "Georgia", "America/New_York", ["PEACHTREE STREET", "CENTENNIAL PARK", "PONCE CITY MARKET"]),
    ("NASHVILLE", "Tennessee", "America/Chicago", ["BROADWAY", "MUSIC ROW", "THE GULCH"]),
    ("NEW ORLEANS", "Louisiana", "America/Chicago", ["BOURBON STREET", "FRENCH MARKET", "JACKSON SQUARE"]),
    ("DENVER", "Colorado", "America/Denver", ["UNION STATION", "RED ROCKS", "LARIMER SQUARE"]),
    ("LAS VEGAS", "Nevada", "America/Los_Angeles", ["THE STRIP", "FREMONT STREET", "BELLAGIO FOUNTAINS"]),
    ("CHICAGO", "Illinois", "America/Chicago", ["NAVY PIER", "MILLENNIUM PARK", "WRIGLEY FIELD"]),
    ("NEW YORK", "New York", "America/New_York", ["TIMES SQUARE", "CENTRAL PARK", "BROOKLYN BRIDGE"]),
    ("SEATTLE", "Washington", "America/Los_Angeles", ["PIKE PLACE", "SPACE NEEDLE", "PIONEER SQUARE"]),
    ("BOSTON", "Massachusetts", "America/New_York", ["FENWAY PARK", "BOSTON COMMON", "HARBOR WALK"]),
]
GENERIC_VENUES = ["HOTEL LOBBY", "TRAIN STATION", "PIZZA PLACE", "GAS STATION", "SHOE STORE", "ARENA"]
INDOOR = {"HOTEL LOBBY", "TRAIN STATION", "PIZZA PLACE", "SHOE STORE", "ARENA", "PONCE CITY MARKET",
          "UNION STATION", "FRENCH MARKET"}
SIGNS = ["OPEN 24 HOURS", "GATE 12", "EXIT 7", "NO PARKING", "HALF PRICE", "ROOM 40", "LANE 3",
         "TICKETS 25", "PLATFORM 8", "FLOOR 9"]
COLOURS = ["#c0392b", "#2471a3", "#1e8449", "#7d3c98", "#b9770e", "#117a65", "#a93226", "#2e4053",
           "#6c3483", "#1f618d", "#196f3d", "#935116"]
SHAPE_COLOURS = ["yellow", "white", "cyan", "orange", "pink", "lime"]
WEATHER = ["sunny", "cloudy", "rainy", "windy", "hot", "cold"]
ITEMS = ["hot dogs", "sandwiches", "jerseys", "cookies", "tacos", "burgers", "water bottles", "t shirts"]
FOODS = ["pizza", "steak", "barbecue", "ice cream", "fried chicken", "coffee"]
NAMES = ["Marcus", "Jasmine", "Tyler", "Olivia", "Andre", "Sofia"]

# espeak-ng voices chosen from a measured grid: tiny.en WER 1.6-3.2 % each (at 140 wpm with a 20 ms
# word gap) and pairwise resemblyzer centroid cosine distance >= 0.30 (most espeak male variants are
# within 0.1 of each other at equal pitch): (voice, pitch, speed, word gap in 10 ms units)
VOICES = [
    ("en-us+m3", 10, 130, 3),
    ("en-us+f3", 85, 130, 3),
    ("en-us+m7", 85, 130, 3),
    ("en-us+f2", 10, 130, 3),
]
SPEAKER_NAMES = ["Speed", "Jasmine", "Driver", "Fan"]

TITLE_FLOURISH = ["🇺🇸 IRL Tour", "IRL Tour ✈️", "Día {day} — IRL Tour", "IRL Tour 🌆"]


@dataclass
class Word:
    word: str
    start: float
    end: float


@dataclass
class Utterance:
    start: float
    end: float  # filled in by the renderer from the real audio length
    speaker: str
    text: str
    words: list[Word] = field(default_factory=list)


@dataclass
class Scene:
    start: float
    end: float
    city: str
    venue: str
    sign: str
    colour: str
    shape_colour: str
    indoor: bool


@dataclass
class Day:
    day: int
    video_id: str
    title: str
    city: str
    state: str
    timezone: str
    start_utc: str
    start_local: str
    release_timestamp: int
    duration_s: float
    captions: bool
    description: str
    scenes: list[Scene]
    utterances: list[Utterance]
    next_city: str | None


@dataclass
class TourPlan:
    subject: str
    seed: int
    days: list[Day]
    speakers: dict[str, dict]
    width: int
    height: int
    fps: int

    def to_dict(self) -> dict:
        return asdict(self)


def _video_id(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + "_-"
    return rng.choice(string.ascii_letters) + "".join(rng.choice(alphabet) for _ in range(10))


def _title(day: int, city: str, state: str, rng: random.Random, tricky: bool) -> str:
    flourish = rng.choice(TITLE_FLOURISH).format(day=day)
    if tricky:
        # a title a careless pipeline would turn into a path: slashes, dots, RTL text, emoji
        return f"Day {day} / ../{city.title()} — رحلة 🚗 {flourish}"
    return f"{flourish} — Day {day}: {city.title()}, {state} 🌴 (día {day})"


def _sentences(city: str, venue: str, sign: str, next_city: str | None, rng: random.Random) -> list[str]:
    pool = [
        f"We just got to {venue.lower()} in {city.title()}.",
        f"It is {rng.choice(WEATHER)} today in {city.title()}.",
        f"Hey everyone, look at that sign, it says {sign.lower()}.",
        f"I just bought {rng.randint(2, 9)} {rng.choice(ITEMS)} for {rng.randint(10, 90)} dollars.",
        f"This is the best {rng.choice(FOODS)} in the whole city.",
        f"My friend {rng.choice(NAMES)} is here with me today.",
        "Say hello to the camera, everybody.",
        "How many people are watching right now?",
        f"Let's go, we are walking to the {rng.choice(GENERIC_VENUES).lower()} next.",
    ]
    if next_city:
        pool.append(f"Tomorrow we are driving to {next_city.title()}.")
    rng.shuffle(pool)
    return pool


def plan_tour(days: int, minutes: float, seed: int = 0, speakers: int = 2,
              scene_seconds: float = 30.0, width: int = 640, height: int = 360, fps: int = 30,
              subject: str = "Synthetic streamer IRL tour", caption_days: str = "even",
              start_date: str = "2025-08-01") -> TourPlan:
    if not 1 <= days <= len(CITIES):
        raise ValueError(f"--days must be between 1 and {len(CITIES)}")
    if not 2 <= speakers <= len(VOICES):
        raise ValueError(f"--speakers must be between 2 and {len(VOICES)}")
    if minutes <= 0:
        raise ValueError("--minutes must be > 0")
    rng = random.Random(seed)
    cities = rng.sample(CITIES, days)
    duration = round(minutes * 60.0, 3)
    speaker_ids = [f"S{i + 1}" for i in range(speakers)]
    out_days: list[Day] = []
    base = datetime.fromisoformat(start_date)
    for d, (city, state, tzname, venues) in enumerate(cities, start=1):
        next_city = cities[d][0] if d < days else None
        tz = ZoneInfo(tzname)
        local_start = (base + timedelta(days=d - 1)).replace(
            hour=rng.randint(10, 17), minute=rng.choice([0, 15, 30, 45]), tzinfo=tz)
        utc_start = local_start.astimezone(timezone.utc)
        scenes: list[Scene] = []
        t = 0.0
        venue_pool = venues + rng.sample(GENERIC_VENUES, 2)
        colours = rng.sample(COLOURS, len(COLOURS))
        k = 0
        while t < duration - 1e-6:
            length = min(duration - t, max(8.0, rng.uniform(0.7, 1.3) * scene_seconds))
            if duration - (t + length) < 5.0:  # no tiny trailing scene
                length = duration - t
            venue = venue_pool[k % len(venue_pool)]
            scenes.append(Scene(start=round(t, 3), end=round(t + length, 3), city=city, venue=venue,
                                sign=rng.choice(SIGNS), colour=colours[k % len(colours)],
                                shape_colour=rng.choice(SHAPE_COLOURS), indoor=venue in INDOOR))
            t += length
            k += 1
        utterances: list[Utterance] = []
        turn = 0
        for scene in scenes:
            cursor = scene.start + rng.uniform(0.8, 2.0)
            for text in _sentences(scene.city, scene.venue, scene.sign, next_city, rng):
                est = 0.085 * len(text) + 0.4  # espeak speaks ~12 chars/s here; the renderer measures the real end
                if cursor + est > scene.end - 0.6:
                    break
                spk = speaker_ids[turn % speakers] if rng.random() < 0.8 else rng.choice(speaker_ids)
                turn += 1
                utterances.append(Utterance(start=round(cursor, 3), end=round(cursor + est, 3),
                                            speaker=spk, text=text))
                cursor += est + rng.uniform(0.8, 2.5)
        captions = (d % 2 == 0) if caption_days == "even" else (d % 2 == 1) if caption_days == "odd" else \
            caption_days == "all"
        out_days.append(Day(
            day=d, video_id=_video_id(rng),
            title=_title(d, city, state, rng, tricky=(d == 2)),
            city=city.title(), state=state, timezone=tzname,
            start_utc=utc_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            start_local=local_start.isoformat(),
            release_timestamp=int(utc_start.timestamp()),
            duration_s=duration, captions=captions,
            description=(f"Day {d} of the tour: live from {city.title()}, {state}. "
                         f"Stops: {', '.join(v.title() for v in venues)}."),
            scenes=scenes, utterances=utterances, next_city=next_city.title() if next_city else None,
        ))
    spk = {sid: {"name": SPEAKER_NAMES[i], "voice": VOICES[i][0], "pitch": VOICES[i][1], "speed": VOICES[i][2],
                 "word_gap": VOICES[i][3]}
           for i, sid in enumerate(speaker_ids)}
    return TourPlan(subject=subject, seed=seed, days=out_days, speakers=spk, width=width, height=height, fps=fps)
