"""Compare the machine code of the tokenizer's walk between two builds, function by function.

    python benchmarks/native_codegen_diff.py OLD/_tokenizer.so NEW/_tokenizer.so

A refactor of native/_tokenizer.pyx that should cost no speed (moving code between .pxi files,
generating it) is checked here without a noisy wall-clock benchmark: each Cython-generated C
function of the walk (a method, `__pyx_f_..._<Class>_<method>` whatever class of the chain holds
it, or a module-level cdef function) is disassembled with objdump and compared after blanking
addresses and symbol names. Prints the functions whose instructions differ and those present in
one build only; exit 1 if any differ. Needs binutils' objdump; reads the binaries only.
"""

from __future__ import annotations

import re
import subprocess
import sys

_HEAD = re.compile(r"^[0-9a-f]+ <(.+)>:$")
_FUNC = re.compile(r"__pyx_f_(?:\d+\w+?_)?\d+_tokenizer_(\w+)\(")


def method_name(symbol: str) -> str | None:
    """`walk_one` (or `walk_one.cold`) for the demangled C symbol of a cdef function or method
    of the walk (a method's name carries its class: `6Walker_walk_one`), else None."""
    m = _FUNC.search(symbol)
    if not m:
        return None
    name = m.group(1)
    cls = re.match(r"(\d+)", name)
    if cls:  # Cython prefixes the class name with its length
        name = name[len(cls.group(1)) + int(cls.group(1)) + 1 :]
    clones = "".join(re.findall(r"\[clone (\.[\w.]+)\]", symbol))
    return name + clones


def functions(path: str) -> dict[str, list[str]]:
    out = subprocess.run(
        ["objdump", "-d", "-C", "--no-show-raw-insn", "-M", "intel", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, list[str]] = {}
    body: list[str] | None = None
    for line in out.splitlines():
        head = _HEAD.match(line)
        if head:
            name = method_name(head.group(1))
            body = found.setdefault(name, []) if name else None
        elif body is not None and "\t" in line:
            ins = line.split("\t", 1)[1]
            ins = re.sub(r"\s*#.*$", "", ins)  # objdump's note of a rip-relative target
            ins = re.sub(r"\[rip\+0x[0-9a-f]+\]", "[rip+off]", ins)
            ins = re.sub(r"<[^>]*>", "<sym>", ins)
            ins = re.sub(r"\b[0-9a-f]{3,}\b", "addr", ins)
            body.append(ins.strip())
    for body in found.values():  # alignment padding after a function is not its code
        while body and re.match(r"(nop|xchg\s+ax,ax|cs nop|data16|int3)", body[-1]):
            body.pop()
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    old, new = functions(argv[0]), functions(argv[1])
    same = sorted(k for k in old.keys() & new.keys() if old[k] == new[k])
    differ = sorted(k for k in old.keys() & new.keys() if old[k] != new[k])
    print(f"{len(same)} functions identical")
    for name in differ:
        print(f"differs: {name} ({len(old[name])} -> {len(new[name])} instructions)")
    for name in sorted(old.keys() - new.keys()):
        print(f"only in {argv[0]}: {name}")
    for name in sorted(new.keys() - old.keys()):
        print(f"only in {argv[1]}: {name}")
    return 1 if differ or old.keys() != new.keys() else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
