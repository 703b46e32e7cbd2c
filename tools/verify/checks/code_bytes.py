"""Which of a record's files are its code, and how many bytes they count, under the public competition's rule.

The public README: "The submission artifact is computed as code bytes plus compressed model bytes." Code is the
training script plus every source file of the record that the script needs at run time: the .py modules it imports
and the files it names (a stub `train_gpt.py` that runs `train_impl.py`: both count; a C++ kernel it compiles:
counts). Found by following imports and file names from the entry script, transitively through the .py files it
reaches. README, figures, requirements, result JSONs and copies of logs are not code; neither is the tokenizer,
which the dataset supplies.

Records counted their code in a self-extracting compressed form (`import lzma as L,base64 as B` then
`exec(L.decompress(B.b85decode("...")))`), which the competition accepted. `compressed_size` computes that form's
size for any code, so the judge never has to take a log's word for it; `unwrap_stub` reads such a stub back as
data (base85 + lzma with an output cap, never executed) so its source can be compared with a log's embedded code.
"""

from __future__ import annotations

import ast
import base64
import lzma
import re
from collections.abc import Callable
from pathlib import PurePosixPath

from tools.records.rules import MAX_FILE_BYTES

CODE_SUFFIXES = (".py", ".cpp", ".cc", ".cu", ".cuh", ".c", ".h", ".hpp", ".pyx")
MAX_UNWRAPPED_BYTES = MAX_FILE_BYTES  # a stub that inflates beyond this is not read (decompression bomb)
_IMPORT_RE = re.compile(rb"(?:^|(?<=[;:]))[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import|import[ \t]+([\w., \t]+))",
                        re.MULTILINE)


def imported_modules(source: bytes) -> set[str]:
    """Module names a Python source imports anywhere (`import a.b, c`, `from a.b import x`, also inside a function
    or after `if x:` on one line, as minified sources write it). Parsed as data; a source that does not parse is
    scanned line by line instead."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _imported_by_lines(source)
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
    return modules


def _imported_by_lines(source: bytes) -> set[str]:
    modules: set[str] = set()
    for match in _IMPORT_RE.finditer(source):
        if match.group(1):
            modules.add(match.group(1).decode("ascii", "replace"))
        else:
            for part in match.group(2).decode("ascii", "replace").split(","):
                name = part.split()[0] if part.split() else ""
                if name:
                    modules.add(name)
    return modules


def _module_files(module: str) -> tuple[str, ...]:
    """The record files a module name can be: `a.b` -> a/b.py, a/b/__init__.py, and each parent package."""
    parts = module.split(".")
    candidates = []
    for end in range(len(parts), 0, -1):
        stem = "/".join(parts[:end])
        candidates += [f"{stem}.py", f"{stem}/__init__.py"]
    return tuple(candidates)


def counted_code_files(entry: str, files: list[str], read: Callable[[str], bytes | None]) -> list[str]:
    """The entry script and every code file it reaches, by import or by naming it, in the order found.

    `files`: the record's regular files (relative POSIX paths); `read(name)` returns a file's bytes or None.
    """
    code_files = [name for name in files if name.endswith(CODE_SUFFIXES) and name != entry]
    counted = [entry]
    pending = [entry]
    while pending:
        source = read(pending.pop())
        if source is None:
            continue
        source = unwrap_stub(source) or source  # a compressed stub's imports are inside it
        reached = {candidate for module in imported_modules(source) for candidate in _module_files(module)}
        for name in code_files:
            if name in counted:
                continue
            if name in reached or PurePosixPath(name).name.encode() in source or name.encode() in source:
                counted.append(name)
                if name.endswith(".py"):
                    pending.append(name)
    return counted


def compressed_size(source: bytes) -> int:
    """Bytes of the self-extracting form records used: lzma at its strongest preset, base85, a two-line stub."""
    packed = base64.b85encode(lzma.compress(source, preset=9 | lzma.PRESET_EXTREME))
    return len(b'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("' + packed + b'")))\n')


def unwrap_stub(script: bytes) -> bytes | None:
    """The source inside a self-extracting lzma+base85 stub, or None when the script is not one (or inflates past
    MAX_UNWRAPPED_BYTES, or is corrupt). Read as data: the stub is parsed (never run) and must be exactly
    `import lzma as L, base64 as B` then `exec(L.decompress(B.b85decode(<literal>)[, format=L.FORMAT_RAW,
    filters=[{"id": L.FILTER_LZMA2}]]))`, the two forms records used."""
    if len(script) > MAX_UNWRAPPED_BYTES or b"b85decode" not in script:
        return None
    try:
        tree = ast.parse(script)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    shape = _stub_shape(tree)
    if shape is None:
        return None
    payload, raw = shape
    try:
        packed = base64.b85decode(payload)
        decompressor = (lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}]) if raw
                        else lzma.LZMADecompressor())
        source = decompressor.decompress(packed, max_length=MAX_UNWRAPPED_BYTES + 1)
    except (ValueError, lzma.LZMAError):
        return None
    if len(source) > MAX_UNWRAPPED_BYTES or not decompressor.eof:
        return None
    return source


def _stub_shape(tree: ast.Module) -> tuple[bytes, bool] | None:
    """(the base85 payload, whether it is raw LZMA2) when the module is exactly a stub, else None."""
    # Besides the import and the exec, only `name = <constant>` lines (one record notes `__wrapper_size__ = N`).
    body = [node for node in tree.body if not (
        isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        and all(isinstance(target, ast.Name) for target in node.targets))]
    if len(body) != 2 or not isinstance(body[0], ast.Import) or not isinstance(body[1], ast.Expr):
        return None
    names = {alias.name: alias.asname or alias.name for alias in body[0].names}
    if set(names) != {"lzma", "base64"}:
        return None
    lzma_name, base64_name = names["lzma"], names["base64"]
    call = body[1].value
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "exec"
            and len(call.args) == 1 and not call.keywords):
        return None
    decompress = call.args[0]
    if not (_is_attribute_call(decompress, lzma_name, "decompress") and len(decompress.args) == 1):
        return None
    decode = decompress.args[0]
    if not (_is_attribute_call(decode, base64_name, "b85decode") and len(decode.args) == 1 and not decode.keywords
            and isinstance(decode.args[0], ast.Constant) and isinstance(decode.args[0].value, (str, bytes))):
        return None
    payload = decode.args[0].value
    payload = payload.encode("ascii", "replace") if isinstance(payload, str) else payload
    keywords = {keyword.arg: keyword.value for keyword in decompress.keywords}
    if not keywords:
        return payload, False
    if set(keywords) == {"format", "filters"} and ast.unparse(keywords["format"]) == f"{lzma_name}.FORMAT_RAW" \
            and ast.unparse(keywords["filters"]).replace(" ", "") in (
                f"[{{'id':{lzma_name}.FILTER_LZMA2}}]", f'[{{"id":{lzma_name}.FILTER_LZMA2}}]'):
        return payload, True
    return None


def _is_attribute_call(node: ast.AST, owner: str, name: str) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name
            and isinstance(node.func.value, ast.Name) and node.func.value.id == owner)
