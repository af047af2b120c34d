"""Geodata, plotting, images, containers, time zones, and the standard library's own objects:
shapely, geopandas, pyproj, matplotlib, pillow, plotly, biopython, python-dateutil, pytz,
pydantic, sortedcontainers, bitarray, bidict, intervaltree, regex, yarl, multidict, stdlib."""

from __future__ import annotations

import random
from typing import Any

from ._base import dump, size, source, words


@source("shapely")
def shapely_geometries(rng: random.Random, scale: str) -> tuple[bytes, str]:
    from shapely import geometry

    pts = [(rng.random() * 10, rng.random() * 10) for _ in range(size(rng, scale, 4, 30))]
    obj = rng.choice(
        [
            geometry.Point(pts[0]),
            geometry.LineString(pts),
            geometry.MultiPoint(pts),
            geometry.Polygon(pts[:3]).buffer(0.5),
            geometry.box(0, 0, 1, 2),
        ]
    )
    return dump({"geom": obj, "id": rng.randrange(999)}, rng)


@source("geopandas")
def geopandas_frames(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import geopandas as gpd
    from shapely.geometry import Point

    n = size(rng, scale, 3, 40)
    frame = gpd.GeoDataFrame({"name": words(rng, n), "v": [rng.random() for _ in range(n)]},
                             geometry=[Point(rng.random(), rng.random()) for _ in range(n)],
                             crs=rng.choice(["EPSG:4326", "EPSG:3857", None]))  # fmt: skip
    if rng.random() < 0.5:
        import io

        out = io.BytesIO()
        frame.to_pickle(out, protocol=rng.randint(2, 5))
        return out.getvalue(), ".pkl"
    return dump(frame if rng.random() < 0.7 else frame.geometry, rng)


@source("pyproj")
def pyproj_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    from pyproj import CRS, Transformer

    code = rng.choice([4326, 3857, 32633, 2154])
    obj = rng.choice([CRS.from_epsg(code), Transformer.from_crs(4326, code, always_xy=True)])
    return dump(obj, rng)


@source("matplotlib")
def matplotlib_figures(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """pickle.dump(fig): how notebooks keep an editable figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    n = size(rng, scale, 3, 30)
    kind = rng.choice(["plot", "bar", "scatter", "imshow"])
    if kind == "plot":
        ax.plot(range(n), [rng.random() for _ in range(n)], label="x")
        ax.legend()
    elif kind == "bar":
        ax.bar(words(rng, 4), [rng.random() for _ in range(4)])
    elif kind == "scatter":
        ax.scatter([rng.random() for _ in range(n)], [rng.random() for _ in range(n)])
    else:
        ax.imshow([[rng.random() for _ in range(4)] for _ in range(4)])
    ax.set_title(rng.choice(words(rng, 3)))
    try:
        return dump(fig, rng, (".pkl", ".fig.pkl"))
    finally:
        plt.close(fig)


@source("pillow", "PIL")
def pillow_images(rng: random.Random, scale: str) -> tuple[bytes, str]:
    from PIL import Image

    w, h = rng.randint(1, 32), rng.randint(1, 32)
    image = Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3))
    obj = image if rng.random() < 0.5 else image.convert(rng.choice(["L", "RGBA", "P"]))
    return dump(obj, rng)


@source("plotly")
def plotly_figures(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import plotly.graph_objects as go

    n = size(rng, scale, 3, 20)
    fig = go.Figure(go.Scatter(x=list(range(n)), y=[rng.random() for _ in range(n)]))
    fig.update_layout(title=rng.choice(words(rng, 3)))
    return dump(fig, rng)


@source("biopython", "Bio")
def biopython_records(rng: random.Random, scale: str) -> tuple[bytes, str]:
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    seq = Seq("".join(rng.choice("ACGT") for _ in range(size(rng, scale, 10, 200))))
    obj = rng.choice([seq, SeqRecord(seq, id=f"s{rng.randrange(99)}", description="synthetic")])
    return dump(obj, rng)


@source("python-dateutil", "dateutil")
def dateutil_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import datetime

    from dateutil import relativedelta, rrule, tz

    start = datetime.datetime(2024, 1, 1 + rng.randrange(27), tzinfo=tz.tzutc())
    obj = {"delta": relativedelta.relativedelta(months=rng.randint(1, 9), weekday=relativedelta.FR),
           "rule": rrule.rrule(rrule.WEEKLY, dtstart=start, count=rng.randint(1, 9)),
           "offset": tz.tzoffset("X", 3600 * rng.randint(-9, 9)), "when": start}  # fmt: skip
    return dump(obj, rng)


@source("pytz")
def pytz_times(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import datetime

    import pytz

    zone = pytz.timezone(rng.choice(["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"]))
    when = zone.localize(datetime.datetime(2024, 1 + rng.randrange(12), 1, 12))
    return dump({"tz": zone, "when": when, "utc": pytz.utc}, rng)


@source("pydantic")
def pydantic_values(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """Values of pydantic's own types kept in a config dict (not a user BaseModel subclass)."""
    import pydantic

    obj = {"url": pydantic.AnyUrl(f"https://example.org/{rng.randrange(99)}"),
           "secret": pydantic.SecretStr("redacted"), "n": rng.randrange(9)}  # fmt: skip
    return dump(obj, rng)


@source("sortedcontainers")
def sortedcontainers_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import sortedcontainers as sc

    keys = [rng.randrange(1000) for _ in range(size(rng, scale, 3, 80))]
    obj = rng.choice(
        [sc.SortedList(keys), sc.SortedSet(keys), sc.SortedDict(zip(keys, keys, strict=True))]
    )
    return dump(obj, rng)


@source("bitarray")
def bitarray_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import bitarray

    bits = [rng.random() < 0.5 for _ in range(size(rng, scale, 8, 500))]
    maker = rng.choice([bitarray.bitarray, bitarray.frozenbitarray])
    return dump(maker(bits, endian=rng.choice(["big", "little"])), rng)


@source("bidict")
def bidict_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import bidict

    vocab = sorted(set(words(rng, 20)))
    return dump(bidict.bidict({w: i for i, w in enumerate(vocab)}), rng)


@source("intervaltree")
def intervaltree_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import intervaltree

    tree = intervaltree.IntervalTree()
    for _ in range(size(rng, scale, 3, 50)):
        lo = rng.randrange(1000)
        tree[lo : lo + rng.randint(1, 50)] = rng.choice(words(rng, 3))
    return dump(tree, rng)


@source("regex")
def regex_patterns(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import regex

    pattern = regex.compile(rf"\b{rng.choice(words(rng, 5))}\w{{0,{rng.randint(1, 9)}}}", regex.I)
    return dump({"tokenizer": pattern, "n": rng.randrange(9)}, rng)


@source("yarl")
def yarl_urls(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import yarl

    return dump([yarl.URL(f"https://example.org/{w}?q={rng.randrange(9)}") for w in
                 words(rng, 3)], rng)  # fmt: skip


@source("multidict")
def multidict_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import multidict

    maker = rng.choice([multidict.MultiDict, multidict.CIMultiDict])
    return dump(maker([(w, rng.randrange(9)) for w in words(rng, 5)]), rng)


@source("python-stdlib", "zoneinfo")
def stdlib_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """decimal, fractions, collections, datetime, uuid, pathlib, zoneinfo, enum, array, re."""
    import array
    import collections
    import datetime
    import decimal
    import fractions
    import ipaddress
    import pathlib
    import re
    import uuid
    import zoneinfo

    when = datetime.datetime(2024, 1 + rng.randrange(12), 1, tzinfo=zoneinfo.ZoneInfo("UTC"))
    obj: dict[str, Any] = {
        "dec": decimal.Decimal(rng.randrange(10**6)) / 100,
        "frac": fractions.Fraction(rng.randint(1, 99), 7),
        "counter": collections.Counter(words(rng, 30)),
        "deque": collections.deque(range(rng.randint(0, 9)), maxlen=16),
        "default": collections.defaultdict(list, {"a": [1]}),
        "when": when,
        "span": datetime.timedelta(seconds=rng.randrange(10**6)),
        "day": datetime.date(2024, 2, 1 + rng.randrange(28)),
        "id": uuid.UUID(int=rng.getrandbits(128)),
        "path": pathlib.PurePosixPath("/data", *words(rng, 2)),
        "array": array.array("d", [rng.random() for _ in range(5)]),
        "pattern": re.compile(r"\d+"),
        "ip": ipaddress.ip_address(f"10.0.0.{rng.randrange(255)}"),
        "range": range(rng.randrange(9)),
        "slice": slice(1, rng.randint(2, 9)),
        "complex": complex(1, rng.random()),
    }
    keep = rng.sample(sorted(obj), rng.randint(3, len(obj)))
    return dump({k: obj[k] for k in keep}, rng, (".pkl", ".p", ".pickle"))


SOURCES = [shapely_geometries, geopandas_frames, pyproj_objects, matplotlib_figures,
           pillow_images, plotly_figures, biopython_records, dateutil_objects, pytz_times,
           pydantic_values, sortedcontainers_objects, bitarray_objects, bidict_objects,
           intervaltree_objects, regex_patterns, yarl_urls, multidict_objects,
           stdlib_objects]  # fmt: skip
