"""The layering docs/architecture.md promises, checked on the source: stages import only shared
modules, only the runner records stage status, and only corpus.py spells artifact folders."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "streamlearn"
STAGES = ("acquire", "chunk", "describe", "rewrite", "train", "evaluate")
ORCHESTRATORS = ("cli.py", "demo.py")  # they run the stages, so they import them


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
        if parts[-1] == "corpus.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if re.search(r"(/\s*|subdir\(\s*)" + folder, line):
                spelled.append(f"{'/'.join(parts)}:{n}: {line.strip()}")
    assert spelled == []
