"""Reading YAML: a config file, with every way it can fail said in one sentence, and any YAML text
with libyaml's parser where PyYAML has one (ten times faster than Python's: `barkbench report`
reads every run's config.yaml).

A config may come from someone else, so it is refused before it can cost much: a file over
MAX_BYTES is not read; one that is not UTF-8 text is not parsed; and between libyaml composing
the document (fast, and bounded: it refuses nesting past 1000 levels) and Python building it,
one pass over the composed nodes refuses a document nested deeper than MAX_DEPTH, one whose
aliases expand to more than MAX_NODES nodes (the "billion laughs": nine aliases of nine aliases
of ... compose to a few dozen nodes, then expand to a billion in whatever walks the result), an
alias inside itself, and a mapping that repeats a key (YAML would keep the last one silently).
"""

from __future__ import annotations

from pathlib import Path

from barkbench.errors import BarkError

MAX_BYTES = 2**20  # a config is a few kB; a study.yaml with its base inline, ten
MAX_DEPTH = 32  # a compare config nests five levels (sweep: key: [[8, 8], ...])
MAX_NODES = 100_000  # after aliases are expanded; a config of a few kB has a few hundred


def load_yaml(text: str, source: str = "the YAML text"):
    """YAML as yaml.safe_load reads it, by libyaml where it can; a document of a dangerous shape is
    a BarkError whose sentence starts with `source` (say "config file 'x.yaml'"). Syntax errors
    are left to the caller as yaml.YAMLError."""
    import yaml  # a command that reads no YAML does not pay for it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # Python's parser, where libyaml is missing
            raise too_deep(source) from None
        if node is None:
            return None
        check_shape(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def check_shape(root, source: str) -> None:
    """Refuse a composed document that is too deep, too big once its aliases are expanded, holds an
    alias inside itself, or repeats a key. One walk, in which a node that aliases share is walked
    once; a scalar is one node of depth one, so only collections are walked."""
    size: dict[int, int] = {}  # id(collection) -> nodes in it, aliases expanded, itself included
    depth: dict[int, int] = {}
    inside: set[int] = set()  # the collections the walk is inside of
    stack = [(root, False, "")]
    while stack:
        node, done, path = stack.pop()
        key = id(node)
        if node.id == "scalar" or key in size:
            continue
        kids = [n for pair in node.value for n in pair] if node.id == "mapping" else node.value
        if done:
            inside.discard(key)
            size[key] = 1 + sum(size.get(id(k), 1) for k in kids)
            depth[key] = 1 + max((depth.get(id(k), 1) for k in kids), default=0)
            if size[key] > MAX_NODES:
                raise BarkError(
                    f"{source} expands to more than {MAX_NODES:,} values through its aliases (&name and *name), "
                    "far more than any config holds; write it out without them"
                )
            if depth[key] > MAX_DEPTH:
                raise too_deep(source)
            continue
        if key in inside:
            line = node.start_mark.line + 1
            raise BarkError(f"{source} holds an alias inside itself (the anchor at line {line}); remove the alias")
        inside.add(key)
        stack.append((node, True, path))
        if node.id == "mapping":
            repeated_key(node, source, path)
            stack += [(k, False, path) for k, _ in node.value if k.id != "scalar"]
            stack += [(v, False, f"{path}{k.value}." if k.id == "scalar" else f"{path}?.") for k, v in node.value]
        else:
            stack += [(kid, False, path) for kid in kids]


def too_deep(source: str) -> BarkError:
    return BarkError(f"{source} is nested more than {MAX_DEPTH} levels deep, where a config needs a few; flatten it")


def repeated_key(node, source: str, path: str) -> None:
    """A key written twice in one mapping (a merge, `<<: *base`, may be overridden: that is its use)."""
    seen = {}
    for key, _ in node.value:
        if key.id != "scalar" or key.tag == "tag:yaml.org,2002:merge":
            continue
        first = seen.setdefault((key.tag, key.value), key)
        if first is not key:
            lines = first.start_mark.line + 1, key.start_mark.line + 1
            raise BarkError(
                f"{source} has the key '{path}{key.value}' twice, at lines {lines[0]} and {lines[1]}, and YAML "
                "would keep only the second; merge them into one"
            )


def read_yaml(path: str | Path) -> dict:
    """A YAML file that must hold a mapping; every way it can fail is a one-sentence BarkError."""
    path = Path(path)
    name = f"config file '{path}'"
    if path.is_dir():
        raise BarkError(f"{name} is a directory; give the path of a YAML file")
    if not path.is_file():
        raise BarkError(f"{name} does not exist; check the path")
    import yaml

    try:
        if path.stat().st_size > MAX_BYTES:
            raise BarkError(
                f"{name} is {path.stat().st_size:,} bytes, over the {MAX_BYTES:,} a config may have; "
                "a config is a few kB: is it the right file?"
            )
        data = path.read_bytes()
    except OSError as err:
        raise BarkError(f"{name} cannot be read ({err.strerror}); check its permissions") from None
    try:
        data = load_yaml(content := text(data, name), name)
    except yaml.reader.ReaderError as err:  # a character YAML does not allow (a control character)
        before = content[: err.position]
        line, column = before.count("\n") + 1, err.position - (before.rfind("\n") + 1) + 1
        raise BarkError(
            f"{name} holds the character {err.character:#04x} at line {line}, column {column}, and YAML text "
            f"allows no {err.reason.removesuffix(' are not allowed')}; remove it"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "it cannot be parsed"
        if "maximum nesting depth" in problem:
            raise too_deep(name) from None
        raise BarkError(f"{name} is not valid YAML{where} ({problem}); fix the syntax there") from None
    if data is None:
        raise BarkError(f"{name} is empty; give it at least a task and a model section")
    if not isinstance(data, dict):
        raise BarkError(
            f"{name} holds a {type(data).__name__}, not a mapping of keys; "
            "write it as `key: value` lines (task:, model:, train:, ...)"
        )
    return data


def text(data: bytes, name: str) -> str:
    """A file's bytes as UTF-8 text (a byte-order mark allowed), or why they are not."""
    if b"\0" in data:
        raise BarkError(f"{name} is a binary file, not YAML text; give the path of a YAML config")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line, column = before.count(b"\n") + 1, err.start - (before.rfind(b"\n") + 1) + 1
        raise BarkError(
            f"{name} is not UTF-8 text: byte 0x{data[err.start]:02x} at line {line}, column {column} is not "
            "UTF-8 (Latin-1, perhaps); save the file as UTF-8"
        ) from None
