"""The package's floors: no import circle among ecg_jax modules, and nothing imports upward.

Read with `ast` from the source (every `import`, lazy ones inside functions included), so it
needs no JAX and runs in about a second. The floors, from the bottom (docs/development.md,
"Import floors"):

  0 ground     small utilities: errors, atomic, interrupts, names, config_utils, metrics,
               normalization, results, process_settings, quiet_logs, local_processes, cli, sweep_points
  1 data       ecg_jax/data/, workdir.py (a run folder's lock and checks, and the data it names)
  2 models     ecg_jax/models/, ecg_jax/baselines/, network_flags.py, and the weights file format
               (ecg_jax/denoise/weights.py: a network's parameters on disk)
  3 train      ecg_jax/train/
  4 consumers  evaluation.py, report/, reproduce.py, and the rest of ecg_jax/denoise/
               (weights or a run's checkpoints -> your recordings; it restores workdirs,
               so it sits above train)
  5 commands   ecg_jax/commands/, __main__.py

A module may import its own floor or any floor below; a circle is refused on every floor.
"""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "ecg_jax"

GROUND = {"ecg_jax", "ecg_jax.errors", "ecg_jax.atomic", "ecg_jax.interrupts", "ecg_jax.names",
          "ecg_jax.config_utils", "ecg_jax.metrics", "ecg_jax.normalization", "ecg_jax.results",
          "ecg_jax.process_settings", "ecg_jax.quiet_logs", "ecg_jax.local_processes", "ecg_jax.cli",
          "ecg_jax.configs", "ecg_jax.weights", "ecg_jax.sweep_points"}
# (prefix, floor): the longest matching prefix decides
FLOORS = [
    ("ecg_jax.data", 1), ("ecg_jax.workdir", 1),   # workdir: the run folder's lock and checks, the data it names
    ("ecg_jax.models", 2), ("ecg_jax.baselines", 2), ("ecg_jax.denoise.weights", 2),
    ("ecg_jax.network_flags", 2),      # a network's constructor options (looks the networks up in models/)
    ("ecg_jax.train", 3),
    ("ecg_jax.evaluation", 4), ("ecg_jax.report", 4), ("ecg_jax.reproduce", 4), ("ecg_jax.denoise", 4),
    ("ecg_jax.commands", 5), ("ecg_jax.__main__", 5),
]
# Circles known and owned by work in progress, each with what resolves it; any other circle fails.
KNOWN_CIRCLES: set[frozenset] = set()   # none: every circle fails
NAMES = {0: "ground", 1: "data", 2: "models", 3: "train", 4: "evaluation/report/denoise", 5: "commands"}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))
            if "configs" not in p.relative_to(PACKAGE).parts[:1]}


def imports() -> dict[str, set[str]]:
    """module -> the ecg_jax modules it imports (`from pkg import mod` counts as mod when mod is a module)."""
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in node.names]
            else:
                continue
            edges[name].update(t for t in targets if t == "ecg_jax" or t.startswith("ecg_jax."))
    return edges


def floor_of(module: str) -> int:
    if module in GROUND:
        return 0
    best = max((p for p, _ in FLOORS if module == p or module.startswith(p + ".")), key=len, default=None)
    assert best is not None, f"{module} has no floor: add it to FLOORS in {__file__}"
    return dict(FLOORS)[best]


def test_every_module_has_a_floor():
    for module in modules():
        floor_of(module)


def test_nothing_imports_upward():
    upward = [f"{m} (floor {floor_of(m)}, {NAMES[floor_of(m)]}) imports {t} (floor {floor_of(t)}, "
              f"{NAMES[floor_of(t)]})"
              for m, targets in sorted(imports().items()) for t in sorted(targets) if floor_of(t) > floor_of(m)]
    assert not upward, "imports across floors, upward:\n" + "\n".join(upward)


def test_no_import_circle():
    edges = imports()
    # Tarjan's strongly connected components, iterative
    index, low, on_stack, stack, circles, counter = {}, {}, set(), [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in edges:
                    continue
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if (len(component) > 1 or node in edges[node]) and frozenset(component) not in KNOWN_CIRCLES:
                        circles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_floor_check_sees_an_upward_import(tmp_path):
    """The checker itself: a lazy import inside a function counts."""
    src = "def f():\n    from ecg_jax.train.members import members_of\n    return members_of\n"
    tree = ast.parse(src)
    found = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert found == ["ecg_jax.train.members"] and floor_of("ecg_jax.train.members") > floor_of("ecg_jax.data.card")
