"""A small in-memory index with fastscan.index's API (Reach, Symbol, Index), for rule tests that
must not depend on the shipped index's contents."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reach:
    hook: str
    category: str
    path: tuple[str, ...]


@dataclass(frozen=True)
class Symbol:
    name: str
    origin: str
    kind: str
    package: str
    version: str = "1.0"
    reaches: tuple[Reach, ...] = ()


@dataclass
class FakeIndex:
    """`symbols` maps "module:qualname" to a Symbol; `aliases` maps "module:attr" to a module."""

    symbols: dict[str, Symbol] = field(default_factory=dict)
    modules: dict[str, str] = field(default_factory=dict)  # module -> package
    aliases: dict[str, str] = field(default_factory=dict)
    version: str = "fake-1"
    digest: str = "f" * 64
    lookups: int = 0

    def add(self, module: str, qualname: str, kind: str, *reaches: Reach, origin: str = "") -> None:
        package = module.split(".", maxsplit=1)[0]
        self.modules.setdefault(module, package)
        self.symbols[f"{module}:{qualname}"] = Symbol(
            qualname.rsplit(".", 1)[-1], origin or f"{module}.{qualname}", kind, package, "1.0",
            tuple(reaches),
        )  # fmt: skip

    def has_module(self, module: str) -> bool:
        return module in self.modules

    def package_of(self, module: str) -> str | None:
        return self.modules.get(module)

    def open_ended(self, module: str) -> bool:
        return False  # every fake module shows all it defines

    def lookup(self, module: str, qualname: str) -> Symbol | None:
        self.lookups += 1
        parts = qualname.split(".")
        for i in range(len(parts)):
            hit = self.symbols.get(f"{module}:{'.'.join(parts[i:])}")
            if hit is not None:
                return hit
            target = self.aliases.get(f"{module}:{parts[i]}")
            if target is None:
                return None
            module = target
        return None


def sample() -> FakeIndex:
    """The issue's cases in miniature."""
    ix = FakeIndex()
    # shaped like torch's datapipe wrapper (now a reviewed denylist entry), under a name no rule
    # lists, so the reach alone decides
    wrapper = "acme.pipes.SerializationWrapper"
    ix.add(
        "acme.pipes",
        "SerializationWrapper",
        "class",
        Reach("setstate", "nested_loader", (f"{wrapper}.__setstate__", "pickle.loads")),
    )
    ix.add("gensim.models.word2vec", "Word2Vec", "class")
    ix.add(
        "shelltool.util",
        "run_cmd",
        "function",
        Reach("call", "process", ("shelltool.util.run_cmd", "subprocess.check_output")),
    )
    ix.add(
        "diskdict",
        "DiskDict",
        "class",
        Reach("setitem", "filesystem_write", ("diskdict.DiskDict.__setitem__", "io.open")),
    )
    ix.add("sklearn.callback._progressbar", "ProgressBar", "class")
    ix.add("sklearn.callback._progressbar", "Thread", "class", origin="threading.Thread")
    ix.add(
        "sklearn.callback._transport",
        "Client",
        "function",
        origin="multiprocessing.connection.Client",
    )
    ix.add("sklearn.linear_model._base", "LinearRegression", "class")
    # torch/multiprocessing/__init__.py: `from multiprocessing import *`
    ix.add("torch.multiprocessing", "Process", "class", origin="multiprocessing.context.Process")
    ix.add(
        "psutil",
        "Popen",
        "class",
        Reach("init", "process", ("psutil.Popen.__init__", "subprocess.Popen.__init__")),
    )
    ix.add(
        "spawnlib",
        "Spawner",
        "class",
        Reach("init", "process", ("spawnlib.Spawner.__init__", "subprocess.Popen.__init__")),
    )
    ix.add("collections", "OrderedDict", "class", origin="collections.OrderedDict")
    ix.modules.setdefault("torch.serialization", "torch")
    ix.modules.setdefault("os", "python")
    ix.add("os", "system", "builtin", Reach("call", "process", ("posix.system",)))
    ix.aliases["torch.serialization:os"] = "os"
    return ix
