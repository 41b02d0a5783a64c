"""The package's layers: every module's imports (module level and function level, read from the AST) point only to
its own layer or the layers below, and no group of modules imports itself in a circle.

Layer order, bottom to top (docs/architecture.md draws it)::

    ground     version, errors, seeding, registry, devices (torch's device), progress (the progress bar)
    measures   measures/: batched pure kernels (Fréchet, PRDC, distinct-n, BLEU, Vendi, entropy, ROC/AUC)
    rundir     rundir/: the run directory (atomic files, columns, journal, lock, RunStore)
    config     config.py: the schema, loading, overrides, arm expansion
    plugins    plugins/: data, models, metrics, regimes, filters, watermark, hf
    engine     engine/: plan (validation), loop, runner, executors, sweep, next_fit
    chains     chains/: telephone chains (no retraining)
    analysis   analysis/: reports, plots, alarms, theory, anatomy, tracking
    audit      audit/: the collapse profile of a user's own dataset
    api        api.py: the Python API
    cli        cli.py, __main__.py: every click command
    package    modelcollapse/__init__.py: the face (``mc.run`` ... load the API on first attribute access)
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "modelcollapse"
LAYERS = [
    (
        "ground",
        [
            "modelcollapse.version",
            "modelcollapse.errors",
            "modelcollapse.seeding",
            "modelcollapse.registry",
            "modelcollapse.devices",
            "modelcollapse.progress",
        ],
    ),
    ("measures", ["modelcollapse.measures"]),
    ("rundir", ["modelcollapse.rundir"]),
    ("config", ["modelcollapse.config"]),
    ("plugins", ["modelcollapse.plugins"]),
    ("engine", ["modelcollapse.engine"]),
    ("chains", ["modelcollapse.chains"]),
    ("analysis", ["modelcollapse.analysis"]),
    ("audit", ["modelcollapse.audit"]),
    ("api", ["modelcollapse.api"]),
    ("cli", ["modelcollapse.cli", "modelcollapse.__main__"]),
    ("package", ["modelcollapse"]),  # the package's face: __version__ and the API, loaded lazily on attribute access
]


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["modelcollapse", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def layer_of(module: str) -> int:
    best, index = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, index = len(prefix), i
    assert index is not None, f"{module} is in no layer: add it to LAYERS"
    return index


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``module`` imports anywhere in its body (relative and absolute imports)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("modelcollapse"):
                continue
            for alias in node.names:  # `from . import x` may name a submodule
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("modelcollapse"))
    return {m for m in found if m in known and m != module}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports(m, p, set(mods)) for m, p in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_no_upward_imports():
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) -> {t} ({LAYERS[layer_of(t)][0]})"
        for m, targets in graph().items()
        for t in targets
        if layer_of(t) > layer_of(m)
    ]
    assert upward == []


def test_the_checker_sees_a_cycle_and_an_upward_edge():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert layer_of("modelcollapse.engine.loop") > layer_of("modelcollapse.plugins.models.gmm")
    edges = graph()
    assert "modelcollapse.plugins.models.base" in edges["modelcollapse.plugins.models.gmm"]


RUNDIR_MAY_IMPORT = {"modelcollapse.errors", "modelcollapse.seeding", "modelcollapse.version"}
RUNDIR_LIBRARIES = {"numpy", "pyarrow", "yaml", "safetensors"}  # beside the standard library


def imported_roots(path: Path) -> set[str]:
    """The top-level names of the absolute (non-package) imports in a file, anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
    return found - {"modelcollapse"}


def test_rundir_is_the_ground_floor_of_files():
    """rundir (the run directory) sits below engine: it imports only errors, seeding and version from the package, and
    only the standard library, numpy, pyarrow, yaml and safetensors from outside."""
    import sys

    edges = graph()
    mods = modules()
    rundir = [m for m in mods if m == "modelcollapse.rundir" or m.startswith("modelcollapse.rundir.")]
    assert len(rundir) >= 6
    inside = {t for m in rundir for t in edges[m] if not t.startswith("modelcollapse.rundir")}
    assert inside <= RUNDIR_MAY_IMPORT, inside - RUNDIR_MAY_IMPORT
    outside = set().union(*(imported_roots(mods[m]) for m in rundir)) - set(sys.stdlib_module_names)
    assert outside <= RUNDIR_LIBRARIES, outside - RUNDIR_LIBRARIES
    assert layer_of("modelcollapse.rundir.store") < layer_of("modelcollapse.engine.loop")
    assert "modelcollapse.engine.store" not in mods


def rundir_names() -> set[str]:
    """Every top-level name a rundir module defines or imports: what reaching the run directory's files looks like."""
    names = set()
    for module, path in modules().items():
        if module.startswith("modelcollapse.rundir"):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.FunctionDef | ast.ClassDef):
                    names.add(node.name)
                elif isinstance(node, ast.Assign):
                    names.update(
                        t.id for t in ast.walk(node) if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)
                    )
    return names


def engine_imports(module: str, path: Path) -> list[tuple[str, str]]:
    """(engine module, name) for each name ``module`` imports from ``modelcollapse.engine`` (relative or absolute)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            target = ".".join(base + [node.module or ""]) if node.level else node.module or ""
            if target.startswith("modelcollapse.engine"):
                out += [(target, a.name) for a in node.names]
    return out


def test_nothing_above_the_engine_imports_it_to_reach_files():
    """chains, analysis and audit reach run directories through rundir: no name they import from engine is one of
    rundir's (a store, an atomic write, a column, the journal, the lock)."""
    files = rundir_names()
    assert {"RunStore", "atomic_write", "frame", "exclusive", "text_column"} <= files
    found = [
        f"{m} imports {name} from {target}"
        for m, path in modules().items()
        if m.split(".")[1:2] in (["chains"], ["analysis"], ["audit"])
        for target, name in engine_imports(m, path)
        if name in files
    ]
    assert found == []


def test_the_file_checker_sees_a_file_import_through_engine(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("from ..engine.runner import RunStore, ProgressBar\n")
    assert engine_imports("modelcollapse.analysis.x", path) == [
        ("modelcollapse.engine.runner", "RunStore"),
        ("modelcollapse.engine.runner", "ProgressBar"),
    ]
    assert "RunStore" in rundir_names() and "ProgressBar" not in rundir_names()


MEASURES_LIBRARIES = {"numpy", "scipy"}  # beside the standard library


def test_measures_imports_nothing_of_the_package():
    """measures (the one implementation of each quantity) sits on the ground floor: it imports nothing of the package
    and only the standard library, numpy and scipy from outside, so every surface (loop metrics, audit, chains,
    reports) can call it. The surfaces do."""
    import sys

    edges = graph()
    mods = modules()
    measures = [m for m in mods if m == "modelcollapse.measures" or m.startswith("modelcollapse.measures.")]
    assert len(measures) >= 6
    inside = {t for m in measures for t in edges[m] if not t.startswith("modelcollapse.measures")}
    assert inside == set()
    outside = set().union(*(imported_roots(mods[m]) for m in measures)) - set(sys.stdlib_module_names)
    assert outside <= MEASURES_LIBRARIES, outside - MEASURES_LIBRARIES
    assert layer_of("modelcollapse.measures.knn") < layer_of("modelcollapse.plugins.metrics.features")
    users = {
        m.split(".")[1]
        for m, targets in edges.items()
        for t in targets
        if t.startswith("modelcollapse.measures") and not m.startswith("modelcollapse.measures")
    }
    assert {"plugins", "audit", "chains"} <= users
