"""Object builders for benchmarks/unseen_libraries.py: benign objects of libraries that are
neither in the training corpus (fastscan/train/benign_libs/, `fastscan corpus`) nor allowlisted
by name in fastscan/rules/. Imported only by the generator process (it imports the libraries);
the measuring process never imports this module.

Each builder is `fn(rng) -> object`; `SOURCES[library]` lists them with the distribution name
(the ecosystem index's unit, withheld in mode (c)). A builder that raises is skipped and
printed, so a library that does not pickle on this machine simply drops out.
"""

from __future__ import annotations

import random
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

Builder = Callable[[random.Random], Any]

# The attrs/decorator classes a user's package defines (pickles name them, as with any user
# code); written into the output dir and imported from there by the generator only.
LABTYPES = '''
"""A user's small package of record types (written by benchmarks/unseen_sources.py)."""
import attr
import attrs
import decorator


@attrs.define
class Sample:
    name: str
    score: float
    tags: list = attrs.field(factory=list)


@attrs.frozen
class Span:
    start: int
    end: int
    label: str = "O"


@attr.s(slots=True, frozen=True)
class Config:
    lr = attr.ib(default=0.1)
    layers = attr.ib(default=(64, 64))


@attr.s
class Run:
    run_id = attr.ib()
    samples = attr.ib(factory=list)
    config = attr.ib(default=None)


@decorator.decorator
def traced(func, *args, **kw):
    return func(*args, **kw)


@traced
def normalise(x, scale=1.0):
    return x * scale
'''


def install_labtypes(root: Path) -> None:
    """Write the user's package under `root` and make it importable (generator only)."""
    pkg = root / "_src"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "labtypes.py").write_text(textwrap.dedent(LABTYPES), encoding="utf-8")
    sys.path.insert(0, str(pkg))


def _words(rng: random.Random, n: int) -> list[str]:
    pool = ("alpha", "beta", "gamma", "delta", "model", "train", "eval", "token", "north", "river")
    return [rng.choice(pool) for _ in range(n)]


def _frame(rng: random.Random, n: int = 12) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "x": [rng.random() for _ in range(n)],
            "y": [rng.random() for _ in range(n)],
            "g": _words(rng, n),
        }
    )


# -- builders, one function per library ----------------------------------------------------------


def packaging_objs(rng: random.Random) -> Any:
    from packaging.markers import Marker
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.tags import Tag
    from packaging.version import Version

    v = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
    return rng.choice(
        [
            Version(v),
            SpecifierSet(f">={v},<{rng.randint(10, 20)}"),
            Requirement(f"torch[cuda]>={v}; python_version>'3.8'"),
            Marker("sys_platform == 'linux'"),
            {
                "pins": [Version(f"1.{i}") for i in range(rng.randint(2, 8))],
                "tag": Tag("cp311", "cp311", "linux_x86_64"),
            },
        ]
    )


def requests_objs(rng: random.Random) -> Any:
    import requests
    from requests.cookies import RequestsCookieJar
    from requests.structures import CaseInsensitiveDict

    kind = rng.randrange(5)
    if kind == 0:
        s = requests.Session()
        s.headers["User-Agent"] = f"bench/{rng.randint(1, 9)}"
        return s
    if kind == 1:
        r = requests.Response()
        r.status_code, r._content, r.url = 200, b'{"ok": true}', "https://example.org/api"
        r.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
        return r
    if kind == 2:
        jar = RequestsCookieJar()
        for w in _words(rng, 3):
            jar.set(w, str(rng.randint(0, 999)), domain="example.org", path="/")
        return jar
    if kind == 3:
        return requests.Request("POST", "https://example.org/x", data={"a": "1"}).prepare()
    return CaseInsensitiveDict({w: str(i) for i, w in enumerate(_words(rng, 4))})


def patsy_objs(rng: random.Random) -> Any:
    """patsy refuses to pickle its objects (patsy issue 26): reported as skipped."""
    import patsy

    df = _frame(rng)
    y, X = patsy.dmatrices(rng.choice(["y ~ x", "y ~ x + C(g)"]), df)
    return rng.choice([X, {"y": y, "X": X}, patsy.dmatrix("x + g", df)])


def formulaic_objs(rng: random.Random) -> Any:
    import formulaic

    mm = formulaic.model_matrix(rng.choice(["y ~ x", "y ~ x + g", "x * y"]), _frame(rng))
    spec = mm.model_spec if hasattr(mm, "model_spec") else mm
    return rng.choice([spec, mm, formulaic.Formula("y ~ x + g")])


def torchmetrics_objs(rng: random.Random) -> Any:
    import torch
    import torchmetrics as tm

    n = rng.randint(2, 6)
    m: Any = rng.choice(
        [
            tm.Accuracy(task="multiclass", num_classes=n),
            tm.MeanSquaredError(),
            tm.F1Score(task="multiclass", num_classes=n),
            tm.MetricCollection([tm.Precision(task="binary"), tm.Recall(task="binary")]),
        ]
    )
    g = torch.Generator().manual_seed(rng.randrange(1 << 30))
    if isinstance(m, tm.MeanSquaredError):
        m.update(torch.rand(8, generator=g), torch.rand(8, generator=g))
    elif isinstance(m, tm.MetricCollection):
        m.update(torch.randint(0, 2, (8,), generator=g), torch.randint(0, 2, (8,), generator=g))
    else:
        m.update(torch.randint(0, n, (8,), generator=g), torch.randint(0, n, (8,), generator=g))
    return rng.choice([m, {"metric": m.state_dict() if rng.random() < 0.5 else m}])


def attrs_objs(rng: random.Random) -> Any:
    import labtypes as lt

    samples = [lt.Sample(w, rng.random(), _words(rng, 2)) for w in _words(rng, rng.randint(1, 6))]
    return rng.choice(
        [
            samples,
            lt.Span(1, rng.randint(2, 9), "PER"),
            lt.Config(rng.random(), (32, 16)),
            lt.Run(f"run-{rng.randint(0, 99)}", samples, lt.Config()),
        ]
    )


def toolz_objs(rng: random.Random) -> Any:
    import operator

    import toolz
    from toolz import curried

    data = _words(rng, rng.randint(4, 20))
    return rng.choice(
        [
            toolz.frequencies(data),
            toolz.groupby(len, data),
            curried.get(1),
            toolz.compose(str.upper, str.strip),
            curried.map(len),
            toolz.curry(operator.add, 3),
            toolz.juxt(len, sorted),
            list(toolz.partition_all(3, data)),
        ]
    )


def dask_objs(rng: random.Random) -> Any:
    """Dask ships graphs with cloudpickle; users pickle collections the same way."""
    import dask
    import dask.array as da
    import dask.bag as db
    import numpy as np

    kind = rng.randrange(4)
    if kind == 0:
        parts = [dask.delayed(abs, pure=True)(-i) for i in range(rng.randint(2, 5))]
        return dask.delayed(sum, pure=True)(parts)
    if kind == 1:
        return da.from_array(np.arange(rng.randint(8, 64), dtype="f8"), chunks=8) * 2
    if kind == 2:
        return db.from_sequence(_words(rng, 10), npartitions=2).map(len)
    import dask.dataframe as dd

    return dd.from_pandas(_frame(rng), npartitions=2).x.sum()


def ml_dtypes_objs(rng: random.Random) -> Any:
    import ml_dtypes
    import numpy as np

    dt = rng.choice(
        [ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, ml_dtypes.int4]
    )
    a = np.array([rng.uniform(-4, 4) for _ in range(rng.randint(4, 64))]).astype(dt)
    return rng.choice([a, {"w": a, "scale": a.astype(np.float32).max()}])


def werkzeug_objs(rng: random.Random) -> Any:
    from werkzeug.datastructures import Headers, ImmutableMultiDict, MIMEAccept, MultiDict

    pairs = [(w, str(i)) for i, w in enumerate(_words(rng, 5))]
    return rng.choice(
        [
            MultiDict(pairs),
            ImmutableMultiDict(pairs),
            Headers(pairs),
            MIMEAccept([("text/html", 1), ("application/json", 0.9)]),
        ]
    )


def sqlalchemy_objs(rng: random.Random) -> Any:
    import sqlalchemy as sa

    meta = sa.MetaData()
    t = sa.Table(
        "t" + str(rng.randint(0, 9)),
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(40)),
        sa.Column("score", sa.Float),
    )
    return rng.choice(
        [
            sa.engine.make_url("postgresql://u@db:5432/x"),
            meta,
            t,
            {"url": sa.engine.make_url("sqlite:///a.db"), "cols": list(t.c.keys())},
        ]
    )


def pyparsing_objs(rng: random.Random) -> Any:
    import pyparsing as pp

    key = pp.Word(pp.alphas)("key") + pp.Suppress("=") + pp.Word(pp.alphanums)("value")
    text = " ".join(f"{w}={rng.randint(0, 99)}" for w in _words(rng, rng.randint(1, 5)))
    return rng.choice([key.parse_string(text), pp.OneOrMore(pp.Group(key)).parse_string(text)])


def tomlkit_objs(rng: random.Random) -> Any:
    import tomlkit

    doc = tomlkit.parse(f'[tool]\nname = "{rng.choice(_words(rng, 3))}"\nn = {rng.randint(0, 9)}\n')
    return rng.choice([doc, doc["tool"], tomlkit.item([1, 2, 3])])


def pygments_objs(rng: random.Random) -> Any:
    from pygments.lexers import PythonLexer
    from pygments.token import Token

    src = f"def f(x):\n    return x + {rng.randint(0, 99)}\n"
    return rng.choice([list(PythonLexer().get_tokens(src)), Token.Name.Function, PythonLexer()])


def jinja2_objs(rng: random.Random) -> Any:
    from jinja2 import Environment, nodes

    ast = Environment().parse("{% for x in xs %}{{ x|upper }}{% endfor %}")
    return rng.choice([ast, nodes.Const(rng.randint(0, 9)), ast.find(nodes.For)])


def frozenlist_objs(rng: random.Random) -> Any:
    """The compiled FrozenList does not pickle: reported as skipped."""
    from frozenlist import FrozenList

    fl = FrozenList(_words(rng, rng.randint(1, 8)))
    if rng.random() < 0.5:
        fl.freeze()
    return fl


def cloudpathlib_objs(rng: random.Random) -> Any:
    from cloudpathlib import AnyPath

    return rng.choice(
        [AnyPath(f"/data/{rng.choice(_words(rng, 3))}.csv"), {"out": AnyPath("/tmp/run")}]
    )


def confection_objs(rng: random.Random) -> Any:
    from confection import Config

    text = (
        f"[training]\nlr = {rng.random():.3f}\nsteps = {rng.randint(1, 9)}\n\n[model]\nwidth = 64\n"
    )
    cfg = Config().from_str(text)
    return rng.choice([cfg, {"config": cfg}])


def catalogue_objs(rng: random.Random) -> Any:
    import catalogue

    return rng.choice(
        [
            catalogue.RegistryError(f"missing {rng.randint(0, 9)}"),
            {"namespaces": ["spacy", "architectures"], "err": catalogue.RegistryError("x")},
        ]
    )


def contourpy_objs(rng: random.Random) -> Any:
    import contourpy
    import numpy as np

    z = np.array([[rng.random() for _ in range(8)] for _ in range(8)])
    gen = contourpy.contour_generator(z=z)
    return rng.choice([gen.lines(0.5), gen.filled(0.2, 0.8), contourpy.LineType.SeparateCode])


def srsly_objs(rng: random.Random) -> Any:
    """srsly.pickle_dumps (its vendored cloudpickle, as spaCy's pipes use): the bytes are the
    file; marked by returning ('raw', bytes)."""
    import srsly

    obj = rng.choice(
        [{"labels": _words(rng, 5)}, {"n": rng.randint(0, 9), "f": len}, _words(rng, 3)]
    )
    return ("raw", srsly.pickle_dumps(obj, protocol=rng.choice([None, 2, 4])))


def rich_objs(rng: random.Random) -> Any:
    from rich.color import Color
    from rich.style import Style
    from rich.text import Text

    return rng.choice(
        [
            Text(" ".join(_words(rng, 4)), style="bold red"),
            Style(bold=True, color="blue"),
            Color.parse("#ff8800"),
            Text.from_markup("[b]x[/b] y"),
        ]
    )


def onnx_objs(rng: random.Random) -> Any:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, rng.randint(1, 8)])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None])
    node = helper.make_node(rng.choice(["Relu", "Sigmoid", "Abs"]), ["x"], ["y"])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]))
    return rng.choice([model, model.graph, {"model": model}])


def protobuf_objs(rng: random.Random) -> Any:
    from google.protobuf import descriptor_pb2, duration_pb2, struct_pb2, timestamp_pb2

    st = struct_pb2.Struct()
    st.update({"a": rng.random()})  # one key: map order is not serialised stably
    return rng.choice(
        [
            timestamp_pb2.Timestamp(seconds=rng.randint(0, 10**9)),
            st,
            duration_pb2.Duration(seconds=rng.randint(1, 99)),
            descriptor_pb2.FileDescriptorProto(name="x.proto", package="p"),
        ]
    )


def narwhals_objs(rng: random.Random) -> Any:
    import narwhals as nw

    df = nw.from_native(_frame(rng), eager_only=True)
    return rng.choice([df, nw.Int64(), df.schema, nw.col("x")])


def msgpack_objs(rng: random.Random) -> Any:
    import msgpack

    return rng.choice(
        [
            msgpack.ExtType(rng.randint(1, 99), b"\x00\x01"),
            msgpack.Timestamp(rng.randint(0, 10**9)),
            {"packed": msgpack.packb({"a": 1}), "ext": msgpack.ExtType(5, b"z")},
        ]
    )


def huggingface_hub_objs(rng: random.Random) -> Any:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.hf_api import RepoUrl

    return rng.choice(
        [
            CommitOperationAdd(path_in_repo="model.bin", path_or_fileobj=b"\x00" * 8),
            CommitOperationDelete(path_in_repo="old.bin"),
            RepoUrl("https://huggingface.co/user/model"),
        ]
    )


def pyerfa_objs(rng: random.Random) -> Any:
    import erfa

    d1, d2 = erfa.cal2jd(2020 + rng.randint(0, 5), rng.randint(1, 12), rng.randint(1, 28))
    return rng.choice([{"jd": (d1, d2)}, erfa.ErfaWarning("dubious year"), erfa.dt_eraASTROM])


def lz4_objs(rng: random.Random) -> Any:
    import lz4.frame

    blob = lz4.frame.compress(" ".join(_words(rng, 40)).encode())
    return {"codec": "lz4", "level": lz4.frame.COMPRESSIONLEVEL_MINHC, "blob": blob}


def psutil_objs(rng: random.Random) -> Any:
    """Recorded system stats (fixed values: never the live machine's)."""
    import psutil

    nt = getattr(psutil, "_ntuples", None) or psutil._common  # psutil 7 moved them
    kind = rng.choice([nt.sdiskusage, nt.pcputimes, nt.snetio, nt.svmem, nt.scpustats])
    values = [rng.randint(0, 10**6) for _ in kind._fields]  # fields differ per platform
    return rng.choice([kind(*values), [kind(*values)]])


def click_objs(rng: random.Random) -> Any:
    import click

    opt = click.Option(["--lr"], type=float, default=rng.random())
    return rng.choice(
        [opt, click.Command("train", params=[opt]), click.Choice(["a", "b"]), click.IntRange(0, 9)]
    )


def markupsafe_objs(rng: random.Random) -> Any:
    from markupsafe import Markup, escape

    return rng.choice(
        [Markup("<b>%s</b>") % rng.choice(_words(rng, 3)), [escape("<x>"), Markup("y")]]
    )


def aiohttp_objs(rng: random.Random) -> Any:
    import aiohttp

    return rng.choice(
        [aiohttp.ClientTimeout(total=rng.randint(1, 60)), aiohttp.BasicAuth("user", "pw")]
    )


def decorator_objs(rng: random.Random) -> Any:
    import labtypes as lt

    return rng.choice([lt.normalise, {"fn": lt.normalise, "scale": rng.random()}])


# library (distribution name) -> its builders
SOURCES: dict[str, Builder] = {
    "packaging": packaging_objs,
    "requests": requests_objs,
    "patsy": patsy_objs,
    "formulaic": formulaic_objs,
    "torchmetrics": torchmetrics_objs,
    "attrs": attrs_objs,
    "toolz": toolz_objs,
    "dask": dask_objs,
    "ml-dtypes": ml_dtypes_objs,
    "werkzeug": werkzeug_objs,
    "sqlalchemy": sqlalchemy_objs,
    "pyparsing": pyparsing_objs,
    "tomlkit": tomlkit_objs,
    "pygments": pygments_objs,
    "jinja2": jinja2_objs,
    "frozenlist": frozenlist_objs,
    "cloudpathlib": cloudpathlib_objs,
    "confection": confection_objs,
    "catalogue": catalogue_objs,
    "contourpy": contourpy_objs,
    "srsly": srsly_objs,
    "rich": rich_objs,
    "onnx": onnx_objs,
    "protobuf": protobuf_objs,
    "narwhals": narwhals_objs,
    "msgpack": msgpack_objs,
    "huggingface-hub": huggingface_hub_objs,
    "pyerfa": pyerfa_objs,
    "lz4": lz4_objs,
    "psutil": psutil_objs,
    "click": click_objs,
    "markupsafe": markupsafe_objs,
    "aiohttp": aiohttp_objs,
    "decorator": decorator_objs,
}

# Libraries whose objects are torch modules or tensors: users torch.save them.
TORCH_SAVED = frozenset({"torchmetrics"})
# Libraries whose collections users (and dask itself) pickle with cloudpickle.
CLOUDPICKLED = frozenset({"dask"})
