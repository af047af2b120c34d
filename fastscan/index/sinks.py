"""Sink primitives: the reviewed, C-level callables that static analysis cannot see into.

One home for the table. Keys are origins ("module.qualname" where the object is really defined:
`posix.system`, not `os.system`), values the dangerous category (fastscan.rules.knowledge).
Python-level sinks (subprocess.Popen, pickle's Python unpickler callers, timeit.timeit,
code.InteractiveInterpreter.runcode, torch.load, ...) are deliberately absent: the index finds
them by following calls down to these primitives. A class listed here is a sink when constructed
and so are its methods ("_pickle.Unpickler" covers "_pickle.Unpickler.load").

`open`-like primitives take a mode: a literal read-only mode (or none, which means "r") is not a
sink; any other or non-literal mode is filesystem_write (conservative: the loader controls the
arguments when it calls the name itself).

DIRECT_ONLY primitives dispatch to a callable they are handed. They make the name itself a
callback_dispatch sink, but are not propagated through calls: nearly every function calls `map`
or `defaultdict` with its own benign callables, so propagation would mark everything.
"""

from __future__ import annotations

from types import MappingProxyType

_PROCESS_POSIX = (
    "system popen fork forkpty vfork execv execve execl execle execlp execlpe execvp execvpe "
    "spawnv spawnve spawnvp spawnvpe spawnl spawnle spawnlp spawnlpe posix_spawn posix_spawnp "
    "kill killpg startfile"
)
_FS_POSIX = (
    "remove unlink rmdir removedirs rename renames replace truncate ftruncate chmod lchmod "
    "fchmod chown lchown fchown symlink link mkdir makedirs mkfifo mknod utime write pwrite "
    "writev sendfile chroot chdir putenv unsetenv"
)


def _table() -> dict[str, str]:
    t: dict[str, str] = {}
    for mod in ("posix", "nt"):
        for name in _PROCESS_POSIX.split():
            t[f"{mod}.{name}"] = "process"
        for name in _FS_POSIX.split():
            t[f"{mod}.{name}"] = "filesystem_write"
        t[f"{mod}.open"] = "filesystem_write"  # read-only flags are exempted by the caller
    t.update(
        {
            # code execution
            "builtins.exec": "exec_sink",
            "builtins.eval": "exec_sink",
            "builtins.compile": "exec_sink",
            "builtins.breakpoint": "exec_sink",
            "types.FunctionType": "exec_sink",  # types.py builds it as type(_f): no static origin
            "types.CodeType": "exec_sink",
            "types.LambdaType": "exec_sink",
            "_xxsubinterpreters.run_string": "exec_sink",
            # processes and native code
            "_posixsubprocess.fork_exec": "process",
            "_winapi.CreateProcess": "process",
            # native code and new interpreters run arbitrary code: the rule base's exec class
            "_ctypes.dlopen": "exec_sink",
            "_ctypes.LoadLibrary": "exec_sink",
            "_xxsubinterpreters.create": "exec_sink",
            "_interpreters.create": "exec_sink",
            # import resolution
            "builtins.__import__": "import_resolver",
            "_imp.exec_dynamic": "import_resolver",
            "_imp.create_dynamic": "import_resolver",
            "_imp.exec_builtin": "import_resolver",
            # nested deserialisation
            "_pickle.loads": "nested_loader",
            "_pickle.load": "nested_loader",
            "_pickle.Unpickler": "nested_loader",
            # pickle's pure-Python twin of _pickle: it runs REDUCE through a dispatch table of
            # its own methods (`self.dispatch[op](self)`), which static analysis cannot follow
            "pickle._Unpickler": "nested_loader",
            "pickle._load": "nested_loader",
            "pickle._loads": "nested_loader",
            "marshal.loads": "nested_loader",
            "marshal.load": "nested_loader",
            # files
            "builtins.open": "filesystem_write",
            "_io.open": "filesystem_write",
            "_io.FileIO": "filesystem_write",
            # network
            "_socket.socket": "network",
            "_socket.socketpair": "network",
            "_socket.getaddrinfo": "network",
            "_socket.gethostbyname": "network",
            "_socket.gethostbyname_ex": "network",
            "_socket.gethostbyaddr": "network",
            "_ssl._SSLContext": "network",
            # introspection that hands out frames and code
            "_ctypes.PyObj_FromPtr": "introspection",
        }
    )
    return t


SINKS: MappingProxyType[str, str] = MappingProxyType(_table())

# Callers of these get a read-only exemption when the mode argument is a literal read mode.
MODE_SINKS = frozenset({"builtins.open", "_io.open", "_io.FileIO", "posix.open", "nt.open"})

DIRECT_ONLY: MappingProxyType[str, str] = MappingProxyType(
    {
        "builtins.map": "callback_dispatch",
        "builtins.filter": "callback_dispatch",
        "builtins.sorted": "callback_dispatch",
        "builtins.min": "callback_dispatch",
        "builtins.max": "callback_dispatch",
        "_operator.call": "callback_dispatch",
        "_operator.methodcaller": "callback_dispatch",
        "_operator.attrgetter": "introspection",
        "builtins.getattr": "introspection",
        "itertools.starmap": "callback_dispatch",
        "itertools.accumulate": "callback_dispatch",
        "itertools.filterfalse": "callback_dispatch",
        "itertools.dropwhile": "callback_dispatch",
        "itertools.takewhile": "callback_dispatch",
        "itertools.groupby": "callback_dispatch",
        "_collections.defaultdict": "callback_dispatch",
        "_functools.reduce": "callback_dispatch",
        "_functools.partial": "callback_dispatch",
        "builtins.mappingproxy": "callback_dispatch",
        "types.MappingProxyType": "callback_dispatch",
        "_sre.SRE_Pattern.sub": "callback_dispatch",
        "_asyncio.Future.add_done_callback": "callback_dispatch",
        "_weakref.ref": "callback_dispatch",
        "_thread.start_new_thread": "callback_dispatch",
        "_thread.start_new": "callback_dispatch",
        "sys.setprofile": "introspection",
        "sys.settrace": "introspection",
        "sys._getframe": "introspection",
    }
)


# Reviewed cut points: Python functions whose sink use cannot be steered into running code the
# loader supplies, and which sit on the paths of nearly every library's ordinary constructors.
# Calls into them are not followed (the function itself keeps its own reach).
CUTS = frozenset(
    {
        # evaluates the `__text_signature__` of a C function (numpy's dispatch decorators call
        # inspect.signature on import-time objects); the text comes from the extension itself
        "inspect._signature_fromstr",
        # evaluate string annotations only when the caller passes eval_str=True; every library
        # decorator and dispatcher calls them on its own functions
        "inspect.signature",
        "inspect.Signature.from_callable",
        "inspect._signature_from_callable",
        # runs `file -b <path>` / `uname` with argument lists, no shell; used by
        # platform.platform()/architecture() for environment reports (gensim lifecycle events)
        "platform._syscmd_file",
        "platform._syscmd_ver",
        # build the warning by calling its category (`category(message)`); every library
        # warns, and a message string handed on is not a callback
        "warnings.warn",
        "warnings.warn_explicit",
    }
)


def sink_category(origin: str, *, methods: bool = True) -> str | None:
    """Category of a propagating sink primitive; with `methods`, also a listed class's methods
    (`_pickle.Unpickler.load`), else only its constructor (`_socket.socket.__init__`)."""
    hit = SINKS.get(origin)
    if hit is None and "." in origin:
        owner, method = origin.rsplit(".", 1)
        if methods or method in ("__init__", "__new__"):
            hit = SINKS.get(owner)
    return hit


def direct_category(origin: str) -> str | None:
    return sink_category(origin) or DIRECT_ONLY.get(origin)
