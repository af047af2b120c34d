"""Declares the Cython extension; all metadata lives in pyproject.toml."""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

# The walk's speed depends on where walk_one's opcode switch lands relative to 64-byte lines:
# moving unrelated code shifted it by 48 bytes and cost ~5% (CPU time, same instructions).
# Starting every function of the walk on a line makes its speed independent of the code around it.
PINNED = {"_tokenizer": ["-falign-functions=64"]}

extensions = cythonize(
    [
        Extension(
            f"fastscan.{name}",
            [f"native/{name}.pyx"],
            language="c++",
            extra_compile_args=os.environ.get("FASTSCAN_CFLAGS", "-O3 -g0").split()
            + PINNED.get(name, []),
            extra_link_args=os.environ.get("FASTSCAN_LDFLAGS", "").split(),
        )
        for name in ("_tokenizer", "_bytescan", "_features", "_zipdir", "_joblibwalk")
    ],
    include_path=["native"],
    compiler_directives={
        "language_level": 3,
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "initializedcheck": False,
    },
    annotate=bool(os.environ.get("FASTSCAN_ANNOTATE")),
)

setup(ext_modules=extensions)
