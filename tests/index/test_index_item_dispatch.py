"""Item-protocol forwarding as callback dispatch (`flows.py`): a class that keeps a value it was
handed and subscripts it with its own key argument in an item method runs that value's
`__getitem__`/`__setitem__` (THREATS F: `collections.ChainMap`, `string.Template.substitute`);
elements stored into its own containers, and state a BUILD restores, are not handed over."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fastscan.index import load_index
from fastscan.index.sources import build_bytes, directory

PKG = {
    "__init__.py": "",
    "maps.py": """
        class Chain:  # ChainMap's shape
            def __init__(self, *maps):
                self.maps = list(maps) or [{}]
            def __getitem__(self, key):
                for mapping in self.maps:
                    try:
                        return mapping[key]
                    except KeyError:
                        pass
                raise KeyError(key)
            def __setitem__(self, key, value):
                self.maps[0][key] = value

        def substitute(template, mapping=None, **kws):  # Template.substitute's shape
            if kws:
                mapping = Chain(kws, mapping)
            return template.format_map(mapping)

        class Backed:  # pandas' NDArrayBacked shape: elements in, elements out
            def __init__(self):
                self._ndarray = []
            def __setitem__(self, key, value):
                self._ndarray[key] = value
            def __getitem__(self, key):
                return self._ndarray[key]

        class Restored:  # its data comes from BUILD state
            def __setstate__(self, state):
                self.table = state["table"]
            def __getitem__(self, key):
                return self.table[key]

        class Indexed:  # subscripting with a literal is not forwarding a lookup
            def __init__(self, rows):
                self.rows = rows
            def first(self):
                return self.rows[0]
        """,
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("items")
    for rel, text in PKG.items():
        path = root / "itempkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    out = root / "items.fsidx"
    out.write_bytes(build_bytes(directory(Path(root / "itempkg"), "itempkg", "1.0")))
    return load_index(out)


def _dispatch(index, qual: str) -> dict[str, tuple[str, ...]]:  # type: ignore[no-untyped-def]
    sym = index.lookup("itempkg.maps", qual)
    assert sym is not None, qual
    return {r.hook: r.path for r in sym.reaches if r.category == "callback_dispatch"}


def test_forwarding_the_item_protocol_to_a_handed_value_is_dispatch(index) -> None:  # type: ignore[no-untyped-def]
    chain = _dispatch(index, "Chain")
    assert chain["init"][0] == "itempkg.maps.Chain.__init__"
    assert chain["init"][-1].startswith("itempkg.maps.Chain.__")
    # the function hands its parameter to such a constructor (through `*maps`)
    sub = _dispatch(index, "substitute")
    assert sub["call"][:2] == ("itempkg.maps.substitute", "itempkg.maps.Chain.__init__")


@pytest.mark.parametrize("qual", ["Backed", "Restored", "Indexed"])
def test_elements_build_state_and_literal_keys_are_not_dispatch(index, qual: str) -> None:  # type: ignore[no-untyped-def]
    assert _dispatch(index, qual) == {}
