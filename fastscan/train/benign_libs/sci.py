"""Scientific Python: numpy, scipy, pandas, statsmodels, sympy, mpmath, networkx, xarray,
pyarrow, polars, astropy, pint, uncertainties, lmfit. Objects from small synthetic data."""

from __future__ import annotations

import io
import random
import warnings
from typing import Any

from ._base import dump, size, source, words


def _np(rng: random.Random) -> Any:
    import numpy as np

    return np.random.default_rng(rng.randrange(2**32))


@source("numpy")
def numpy_special_arrays(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """Record, structured, masked, object, matrix and datetime64 arrays."""
    import numpy as np

    g, n = _np(rng), size(rng, scale, 5, 50)
    kind = rng.choice(["rec", "structured", "masked", "object", "matrix", "datetime", "mixed"])
    if kind == "rec":
        obj: Any = np.rec.fromarrays(
            [g.random(n), g.integers(0, 9, n)], dtype=[("x", "f8"), ("y", "i8")]
        )
    elif kind == "structured":
        dt = np.dtype([("name", "U8"), ("score", "f4"), ("pos", "i2", (2,))])
        obj = np.zeros(n, dtype=dt)
    elif kind == "masked":
        obj = np.ma.masked_less(g.normal(size=(n, 3)), 0.0)
    elif kind == "object":
        obj = np.array([rng.choice(words(rng, 3)) for _ in range(n)] + [None, 1.5], dtype=object)
    elif kind == "matrix":
        obj = np.asmatrix(g.random((3, 3)))
    elif kind == "datetime":
        obj = np.arange("2024-01", n, dtype="datetime64[D]")[:n] + np.timedelta64(1, "h")
    else:
        obj = {"a": g.random(n).astype(np.float16), "b": np.complex64(1 + 2j), "c": np.int8(3)}
    return dump(obj, rng, (".pkl", ".npy.pkl", ".p"))


@source("scipy")
def scipy_sparse(rng: random.Random, scale: str) -> tuple[bytes, str]:
    from scipy import sparse

    n = size(rng, scale, 5, 80)
    fmt = rng.choice(["csr", "csc", "coo", "bsr", "dia", "lil", "dok"])
    base = sparse.random(n, n, density=0.1, format="csr", random_state=rng.randrange(2**31))
    if rng.random() < 0.5:
        base = sparse.csr_array(base)
    return dump(base.asformat(fmt), rng, (".pkl", ".sparse.pkl"))


@source("scipy")
def scipy_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import numpy as np
    from scipy import interpolate, spatial, stats

    g, n = _np(rng), size(rng, scale, 8, 60)
    x = np.sort(g.random(n)) + np.arange(n)
    kind = rng.choice(["interp1d", "spline", "kdtree", "ckdtree", "frozen", "rgi"])
    if kind == "interp1d":
        obj: Any = interpolate.interp1d(x, g.random(n), kind=rng.choice(["linear", "cubic"]))
    elif kind == "spline":
        obj = interpolate.CubicSpline(x, g.random(n))
    elif kind == "kdtree":
        obj = spatial.KDTree(g.random((n, 3)))
    elif kind == "ckdtree":
        obj = spatial.cKDTree(g.random((n, 2)))
    elif kind == "frozen":
        dist = rng.choice([stats.norm, stats.gamma, stats.beta, stats.poisson])
        shape = {stats.gamma: (2.0,), stats.beta: (2.0, 3.0), stats.poisson: (4.0,)}
        obj = dist(*shape.get(dist, ()), loc=rng.random())
        obj.random_state = rng.randrange(2**32)  # else the global RandomState is pickled
    else:
        axis = np.arange(5.0)
        obj = interpolate.RegularGridInterpolator((axis, axis), g.random((5, 5)))
    return dump(obj, rng)


def _frame(rng: random.Random, n: int) -> Any:
    import numpy as np
    import pandas as pd

    g = _np(rng)
    cols = {
        "i": g.integers(0, 100, n),
        "f": g.random(n),
        "s": [rng.choice(words(rng, 4)) for _ in range(n)],
        "b": g.random(n) < 0.5,
        "cat": pd.Categorical(rng.choices(["a", "b", "c"], k=n)),
        "tz": pd.date_range("2024-01-01", periods=n, freq="h", tz="Europe/Paris"),
        "period": pd.period_range("2020-01", periods=n, freq="M"),
        "interval": pd.interval_range(0, n),
        "sparse": pd.arrays.SparseArray(np.where(g.random(n) < 0.8, 0.0, 1.0)),
        "td": pd.to_timedelta(g.integers(0, 1000, n), unit="s"),
        "nullable": pd.array(g.integers(0, 5, n), dtype="Int64"),
        "str": pd.array(words(rng, n), dtype="string"),
    }
    keep = rng.sample(sorted(cols), rng.randint(2, len(cols)))
    frame = pd.DataFrame({k: cols[k] for k in keep})
    if rng.random() < 0.3:
        frame.index = pd.MultiIndex.from_arrays([np.arange(n) % 3, np.arange(n)], names=["g", "k"])
    return frame


@source("pandas")
def pandas_frames(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """DataFrames/Series of every dtype; to_pickle with every compression, or pickle.dumps."""
    from ..benign import _fixed_clock

    frame = _frame(rng, size(rng, scale, 4, 60))
    obj = frame if rng.random() < 0.7 else frame.iloc[:, 0]
    if rng.random() < 0.3:
        return dump(obj, rng, (".pkl", ".df.pkl"))
    method = rng.choice([None, "gzip", "bz2", "xz", "zip", "tar"])
    compression: Any = {"method": method, "mtime": 0} if method == "gzip" else method
    out = io.BytesIO()
    with _fixed_clock():
        obj.to_pickle(out, compression=compression, protocol=rng.randint(2, 5))
    ext = {None: ".pkl", "gzip": ".pkl.gz", "bz2": ".pkl.bz2", "xz": ".pkl.xz"}
    return out.getvalue(), ext.get(method, f".pkl.{method}")


@source("statsmodels")
def statsmodels_results(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """OLS/GLM/Logit/ARIMA results saved with `.save()` (a pickle), with or without data."""
    import numpy as np
    import statsmodels.api as sm
    from statsmodels.tsa.arima.model import ARIMA

    g, n = _np(rng), size(rng, scale, 40, 120)
    X = sm.add_constant(g.normal(size=(n, 2)))
    y = X @ np.array([1.0, 2.0, -1.0]) + g.normal(size=n)
    kind = rng.choice(["ols", "glm", "logit", "arima", "wls"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "ols":
            res = sm.OLS(y, X).fit()
        elif kind == "wls":
            res = sm.WLS(y, X, weights=g.random(n) + 0.5).fit()
        elif kind == "glm":
            res = sm.GLM(np.abs(y).round(), X, family=sm.families.Poisson()).fit()
        elif kind == "logit":
            res = sm.Logit((y > 0).astype(float), X).fit(disp=0)
        else:
            res = ARIMA(np.cumsum(g.normal(size=n)), order=(1, 1, rng.randint(0, 1))).fit()
    out = io.BytesIO()
    res.save(out, remove_data=rng.random() < 0.5)
    return out.getvalue(), rng.choice((".pickle", ".pkl", ".sm"))


@source("sympy")
def sympy_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import sympy

    x, y = sympy.symbols("x y", real=True)
    k = rng.randint(1, 9)
    obj = rng.choice([
        sympy.sin(x) ** 2 + sympy.exp(k * y) / (1 + x),
        sympy.Matrix([[x, k], [y, x * y]]),
        sympy.Integral(sympy.sqrt(x) * k, (x, 0, 1)),
        sympy.Rational(k, 7) * sympy.pi + sympy.I,
        sympy.Eq(x**2 + k, y),
    ])  # fmt: skip
    return dump(obj, rng)


@source("mpmath")
def mpmath_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import mpmath

    k = rng.randint(1, 99)
    # mpmath's matrix and interval types do not pickle; numbers do
    obj = rng.choice([mpmath.mpf(k) / 7, mpmath.mpc(k, 2), [mpmath.sqrt(k), mpmath.pi * k]])
    return dump({"value": obj, "k": k}, rng)


@source("networkx")
def networkx_graphs(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import networkx as nx

    n = size(rng, scale, 5, 60)
    maker = rng.choice([nx.Graph, nx.DiGraph, nx.MultiGraph, nx.MultiDiGraph])
    graph = maker(name=rng.choice(words(rng, 3)))
    for _ in range(n * 2):
        graph.add_edge(rng.randrange(n), rng.randrange(n), weight=rng.random(), label=rng.choice(
            words(rng, 2)))  # fmt: skip
    graph.nodes[0]["kind"] = "root" if 0 in graph else None
    return dump(graph, rng, (".pkl", ".gpickle"))


@source("xarray")
def xarray_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import pandas as pd
    import xarray as xr

    g, n = _np(rng), size(rng, scale, 3, 30)
    da = xr.DataArray(g.random((n, 4)), dims=("time", "x"),
                      coords={"time": pd.date_range("2024-01-01", periods=n), "x": list("abcd")},
                      attrs={"units": "K"})  # fmt: skip
    obj = da if rng.random() < 0.4 else xr.Dataset({"t": da, "p": da * 2})
    return dump(obj, rng)


@source("pyarrow")
def pyarrow_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import pyarrow as pa

    n = size(rng, scale, 3, 50)
    table = pa.table({"id": list(range(n)), "w": words(rng, n), "v": [rng.random() for _ in
                      range(n)]})  # fmt: skip
    obj = rng.choice([table, table.to_batches()[0], table.schema, table.column("w")])
    return dump(obj, rng)


@source("polars")
def polars_frames(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import polars as pl

    n = size(rng, scale, 3, 50)
    frame = pl.DataFrame({"id": list(range(n)), "w": words(rng, n),
                          "v": [rng.random() for _ in range(n)]})  # fmt: skip
    return dump(frame if rng.random() < 0.7 else frame["v"], rng)


@source("astropy")
def astropy_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import astropy.units as u
    from astropy.table import Table
    from astropy.time import Time

    n = size(rng, scale, 3, 30)
    kind = rng.choice(["quantity", "table", "time"])
    if kind == "quantity":
        obj: Any = [rng.random() * k for k in range(n)] * u.km / u.s
    elif kind == "table":
        obj = Table({"flux": [rng.random() for _ in range(n)] * u.Jy, "name": words(rng, n)})
    else:
        obj = Time(["2024-01-01T00:00:00", "2024-06-01T12:00:00"], scale="utc")
    return dump(obj, rng)


@source("pint")
def pint_quantities(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import pint

    ureg = pint.get_application_registry()
    obj = {"speed": rng.random() * ureg.meter / ureg.second, "mass": ureg.Quantity(3, "kg")}
    return dump(obj, rng)


@source("uncertainties")
def uncertainties_values(rng: random.Random, scale: str) -> tuple[bytes, str]:
    from uncertainties import ufloat

    a, b = ufloat(rng.random(), 0.1), ufloat(rng.random() + 1, 0.05)
    return dump({"a": a, "ratio": a / b, "sum": a + b}, rng)


@source("lmfit")
def lmfit_parameters(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import lmfit

    params = lmfit.Parameters()
    for name in ("amp", "cen", "wid")[: rng.randint(1, 3)]:
        params.add(name, value=rng.random(), min=0, max=10)
    return dump(params, rng)


SOURCES = [numpy_special_arrays, scipy_sparse, scipy_objects, pandas_frames, statsmodels_results,
           sympy_objects, mpmath_objects, networkx_graphs, xarray_objects, pyarrow_objects,
           polars_frames, astropy_objects, pint_quantities, uncertainties_values,
           lmfit_parameters]  # fmt: skip
