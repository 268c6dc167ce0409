"""The layering docs/architecture.md promises, checked on the source: every import points to its own layer
or a lower one, stages import only shared modules, only the runner records stage status, and only
corpus/layout.py spells artifact folders."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "streamlearn"
STAGES = ("acquire", "chunk", "describe", "rewrite", "train", "evaluate")
ORCHESTRATORS = ("cli.py", "demo.py")  # they run the stages, so they import them

# Low to high; a module may import its own layer or a lower one. The runner sits under the stages (each
# stage declares a `Stage` and calls `run`); test and demo data (`testdata`) sit with the stages.
LAYERS = (
    ("streamlearn", "core"),
    ("media",),
    ("models",),
    ("corpus",),
    ("runner",),
    (*STAGES, "export", "testdata"),
    ("cli", "demo", "__main__"),
)


def layer_of(module: str) -> int | None:
    """The layer of a dotted module name (`streamlearn.corpus.tables`: 3), None for one outside the package."""
    names = module.split(".")
    if names[0] != "streamlearn":
        return None
    top = names[1] if len(names) > 1 else "streamlearn"
    return next((n for n, layer in enumerate(LAYERS) if top in layer), None)


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        yield path, path.relative_to(SRC).parts


def _imported(path: Path, parts: tuple[str, ...]) -> list[tuple[int, str]]:
    package = ["streamlearn", *parts[:-1]]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + [node.module or ""]) if node.level else node.module or ""
            out.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def test_no_stage_imports_another_stage():
    crossings = []
    for path, parts in _modules():
        if parts[0] in ORCHESTRATORS:
            continue
        own = parts[0] if parts[0] in STAGES else None
        for line, target in _imported(path, parts):
            names = target.split(".")
            if names[0] == "streamlearn" and len(names) > 1 and names[1] in STAGES and names[1] != own:
                crossings.append(f"{'/'.join(parts)}:{line} imports {target}")
    assert crossings == []


def _module_of(parts: tuple[str, ...]) -> str:
    names = ["streamlearn", *parts[:-1]] + ([] if parts[-1] == "__init__.py" else [parts[-1][:-3]])
    return ".".join(names)


def _upward(path: Path, parts: tuple[str, ...]) -> list[str]:
    own = layer_of(_module_of(parts))
    out = []
    for line, target in _imported(path, parts):
        layer = layer_of(target)
        if layer is not None and layer > own:
            out.append(f"{'/'.join(parts)}:{line} imports {target} (layer {layer} over {own})")
    return out


def test_every_module_has_a_layer():
    assert [p for p, parts in _modules() if layer_of(_module_of(parts)) is None] == []


def test_every_import_points_to_its_own_layer_or_lower():
    upward = [u for path, parts in _modules() for u in _upward(path, parts)]
    assert upward == []


def test_the_layer_check_sees_an_upward_import(tmp_path):
    core = tmp_path / "streamlearn" / "core"
    core.mkdir(parents=True)
    (core / "x.py").write_text("from streamlearn.core.errors import StreamlearnError\n"
                               "def f():\n    from streamlearn.corpus.layout import Corpus\n")
    found = _upward(core / "x.py", ("core", "x.py"))
    assert found == ["core/x.py:3 imports streamlearn.corpus.layout (layer 3 over 0)"]
    assert layer_of("streamlearn.runner") < layer_of("streamlearn.train.engine") < layer_of("streamlearn.cli")


def test_the_import_check_sees_a_crossing(tmp_path):
    bad = tmp_path / "streamlearn" / "describe"
    bad.mkdir(parents=True)
    (bad / "x.py").write_text("from streamlearn.train.samples import encode\nfrom ..chunk import frames\n")
    found = _imported(bad / "x.py", ("describe", "x.py"))
    assert [t for _, t in found] == ["streamlearn.train.samples", "streamlearn.chunk"]


def test_only_the_runner_records_stage_status():
    writers = []
    for path, parts in _modules():
        if parts[-1] in ("runner.py", "manifest.py"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if re.search(r"\.record(_many)?\(", line):
                writers.append(f"{'/'.join(parts)}:{n}: {line.strip()}")
    assert writers == []


def test_only_the_corpus_spells_artifact_folders():
    folder = r'"(runs|evals|questions|descriptions|rewrites|frames|chunks\.d|exports|videos)"'
    spelled = []
    for path, parts in _modules():
        if parts == ("corpus", "layout.py"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if re.search(r"(/\s*|subdir\(\s*)" + folder, line):
                spelled.append(f"{'/'.join(parts)}:{n}: {line.strip()}")
    assert spelled == []
