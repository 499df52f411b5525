"""Your own Flax network in the benchmark: `--config.model=SPEC` for a network that is not built in.

SPEC is one of

    path/to/my_net.py:MyNet     a .py file anywhere (absolute, or relative to the current directory)
    my_package.module:MyNet     a module on the Python path
    their_name                  an entry point of group `ecg_jax.models` declared by an installed
                                package (pyproject.toml: [project.entry-points."ecg_jax.models"]
                                their_name = "their_pkg.mod:TheirNet")

Built-in names (ecg_jax.models.MODEL_NAMES) always win. The class's constructor options come
from the config's `model_kwargs`, as for the built-in networks.

The contract (`check_contract`, run before training writes anything, each broken rule one
ConfigError line): a `flax.linen.Module` subclass; `init(key, zeros((2, window, 2)), train=False)`
works; `apply(..., train=True, mutable=["batch_stats"])` and `apply(..., train=False)` both return
(batch, length, 2) float32; its only variable collections are `params` and, optionally,
`batch_stats`; the initialised network's output is finite; eval mode is deterministic.

`source_record(spec)` says how to rebuild the module (the spec, and the file and sha256 of its
bytes); training keeps it in the workdir (`SOURCE_RECORD`) and `check_recorded_source` compares a
workdir's record with the file as it is now, before a resume or an evaluation.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import os
import re
import sys
import traceback
import types
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ecg_jax.errors import ConfigError, one_line

GROUP = "ecg_jax.models"
SOURCE_RECORD = "model_source.json"
ALLOW_CHANGED_FLAG = "--allow_changed_model_source"
_COLLECTIONS = ("params", "batch_stats")
_MODULE_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

# spec -> the absolute file a workdir recorded for it (a relative spec then means that file, from any folder)
_PINNED: dict[str, str] = {}
# (absolute path, sha256) -> the module executed from those bytes
_FILE_MODULES: dict[tuple[str, str], types.ModuleType] = {}


def class_label(spec: str) -> str:
    """The name a spec shows in tables: the class name of PATH.py:Class / module:Class, else the
    entry point's name."""
    return spec.rpartition(":")[2] if ":" in spec else spec


def load_class(spec: str, builtins: Sequence[str] = ()) -> type[nn.Module]:
    """The Flax module class a spec names (ConfigError, one line, when there is none)."""
    return load(spec, builtins)[0]


def source_record(spec: str) -> dict[str, Any]:
    """How to rebuild the class: {"model": spec, "kind": "file"|"module"|"entry_point", "class",
    "path" and "sha256" of the source file (None where a module has no file), ...}."""
    return load(spec)[1]


def load(spec: str, builtins: Sequence[str] = ()) -> tuple[type[nn.Module], dict[str, Any]]:
    """(class, source record) of an external spec; see the module docstring for the forms."""
    if ":" not in spec:
        if spec.endswith(".py"):
            raise ConfigError(f"model {spec!r} names a file but no class: give PATH.py:ClassName")
        return _from_entry_point(spec, builtins)
    where, _, class_name = spec.rpartition(":")
    if not class_name.isidentifier():
        raise ConfigError(f"model {spec!r}: {class_name!r} is not a class name; give PATH.py:ClassName "
                          "or module:ClassName")
    if where.endswith(".py") or "/" in where or os.sep in where or os.path.isfile(where):
        return _from_file(spec, where, class_name)
    if _MODULE_PATH.match(where):
        return _from_module(spec, where, class_name)
    raise ConfigError(f"model {spec!r} is neither PATH.py:ClassName nor module.path:ClassName")


def pin(spec: str, path: str) -> None:
    """Load the file spec `spec` from `path` (the absolute path a workdir recorded) from now on."""
    _PINNED[spec] = path


# ------------------------------------------------------------------ the three routes

def _from_file(spec: str, file: str, class_name: str) -> tuple[type[nn.Module], dict[str, Any]]:
    path = _PINNED.get(spec) or os.path.abspath(os.path.expanduser(file))
    if not os.path.isfile(path):
        raise ConfigError(f"model file {file} not found: looked for {path} (a relative path is taken from the "
                          f"current directory, {os.getcwd()})")
    with open(path, "rb") as f:
        data = f.read()
    sha = hashlib.sha256(data).hexdigest()
    module = _FILE_MODULES.get((path, sha))
    if module is None:
        module = _FILE_MODULES[(path, sha)] = _execute(path, data, sha)
    cls = _class_in(module, class_name, spec, f"file {path}")
    return cls, {"model": spec, "kind": "file", "class": class_name, "path": path, "sha256": sha}


def _execute(path: str, data: bytes, sha: str) -> types.ModuleType:
    """Run exactly the bytes that were hashed, as a module of its own (registered in sys.modules while
    and after it runs: dataclasses, and so Flax, look a class's module up there)."""
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    name = f"_ecg_jax_model_{stem}_{sha[:12]}"
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    try:
        exec(compile(data, path, "exec"), module.__dict__)   # noqa: S102 -- the user's own network file
    except Exception as e:  # noqa: BLE001 -- whatever the file raises: one line naming file and line
        del sys.modules[name]
        raise ConfigError(f"model file {path} does not import: {error_location(e, path)}{one_line(e)}") from None
    return module


def _from_module(spec: str, module_name: str, class_name: str) -> tuple[type[nn.Module], dict[str, Any]]:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise ConfigError(f"model {spec!r}: no module {e.name!r} found: looked in the folders of sys.path "
                              f"({_shown_path()}); install its package or add its folder to PYTHONPATH, "
                              "or give a file as PATH.py:ClassName") from None
        raise ConfigError(f"model module {module_name} does not import: {error_location(e)}{one_line(e)}") from None
    except Exception as e:  # noqa: BLE001 -- whatever the module raises: one line
        raise ConfigError(f"model module {module_name} does not import: {error_location(e)}{one_line(e)}") from None
    cls = _class_in(module, class_name, spec, f"module {module_name} ({getattr(module, '__file__', None)})")
    return cls, {"model": spec, "kind": "module", "module": module_name, "class": class_name,
                 **_file_of(cls)}


def _from_entry_point(name: str, builtins: Sequence[str]) -> tuple[type[nn.Module], dict[str, Any]]:
    points = [ep for ep in importlib.metadata.entry_points(group=GROUP) if ep.name == name]
    if not points:
        installed = sorted({ep.name for ep in importlib.metadata.entry_points(group=GROUP)})
        raise ConfigError(f"unknown model {name!r}: not a built-in network ({', '.join(builtins) or 'none'}) "
                          f"and no entry point {name!r} in group {GROUP!r} (installed: "
                          f"{', '.join(installed) or 'none'}); your own network: PATH.py:ClassName or "
                          "module.path:ClassName")
    if len({ep.value for ep in points}) > 1:
        raise ConfigError(f"model {name!r}: several installed packages declare an entry point of that name in "
                          f"group {GROUP!r} ({', '.join(sorted(ep.value for ep in points))}); uninstall all but one")
    ep = points[0]
    try:
        obj = ep.load()
    except Exception as e:  # noqa: BLE001 -- whatever the package raises: one line
        raise ConfigError(f"model {name!r} (entry point {ep.value}) does not import: "
                          f"{error_location(e)}{one_line(e)}") from None
    cls = _checked_class(obj, name, f"entry point {name} = {ep.value}")
    dist = getattr(ep, "dist", None)
    return cls, {"model": name, "kind": "entry_point", "group": GROUP, "value": ep.value,
                 "distribution": f"{dist.name} {dist.version}" if dist is not None else None,
                 "class": cls.__qualname__, **_file_of(cls)}


def _class_in(module: types.ModuleType, class_name: str, spec: str, where: str) -> type[nn.Module]:
    obj = getattr(module, class_name, None)
    if obj is None:
        found = sorted(k for k, v in vars(module).items()
                       if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__)
        raise ConfigError(f"model {spec!r}: {where} defines no {class_name} (Flax modules there: "
                          f"{', '.join(found) or 'none'})")
    return _checked_class(obj, spec, where)


def _checked_class(obj: Any, spec: str, where: str) -> type[nn.Module]:
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise ConfigError(f"model {spec!r}: {getattr(obj, '__name__', repr(obj))} of {where} is not a "
                          f"flax.linen.Module subclass (rule: a network is a class derived from "
                          f"flax.linen.Module; fix: class {getattr(obj, '__name__', 'MyNet')}(nn.Module))")
    return obj


def _file_of(cls: type) -> dict[str, Any]:
    """The file that defines `cls` and the sha256 of its bytes (None, None where there is no file)."""
    path = getattr(sys.modules.get(cls.__module__), "__file__", None)
    if not path or not os.path.isfile(path):
        return {"path": None, "sha256": None}
    with open(path, "rb") as f:
        return {"path": os.path.abspath(path), "sha256": hashlib.sha256(f.read()).hexdigest()}


def _shown_path(limit: int = 6) -> str:
    folders = [p or os.getcwd() for p in sys.path]
    return ", ".join(folders[:limit]) + (f", and {len(folders) - limit} more" if len(folders) > limit else "")


def error_location(e: BaseException, prefer: str | None = None) -> str:
    """"FILE:LINE: " where `e` was raised: for a syntax error its own place, else the innermost frame in
    `prefer` (the user's file), else the innermost frame outside this module and importlib."""
    if isinstance(e, SyntaxError) and e.filename:
        return f"{e.filename}:{e.lineno}: "
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if not f.filename.startswith("<") and os.path.abspath(f.filename) != os.path.abspath(__file__)]
    mine = [f for f in frames if prefer and os.path.abspath(f.filename) == prefer]
    frame = (mine or frames or [None])[-1]
    return "" if frame is None else f"{frame.filename}:{frame.lineno}: "


# ------------------------------------------------------------------ the contract

def check_contract(model: nn.Module, window: int, spec: str) -> None:
    """Check an external network against the benchmark's contract (module docstring); ConfigError,
    one line naming the rule and the fix, for the first rule it breaks.

    Shapes come from `jax.eval_shape` (no compiling); finiteness and determinism need one real
    initialisation and two eval-mode passes on a batch of 2.
    """
    cls = type(model)
    _checked_class(cls, spec, "the config")
    source = getattr(sys.modules.get(cls.__module__), "__file__", None)
    source = os.path.abspath(source) if source else None
    what = f"model {spec!r} breaks the network contract"
    zeros = jnp.zeros((2, window, 2), jnp.float32)
    key = jax.random.key(0)

    def failed(call: str, e: Exception, fix: str) -> ConfigError:
        return ConfigError(f"{what}: {call} fails ({error_location(e, source)}{one_line(e)}); {fix}")

    init_call = f"init(key, zeros((2, {window}, 2), float32), train=False)"
    try:
        shapes = jax.eval_shape(lambda k: model.init(k, zeros, train=False), key)
    except Exception as e:  # noqa: BLE001 -- the user's code: one line
        raise failed(init_call, e, "__call__(self, x, *, train) must take (batch, length, 2) float32") from None
    collections = sorted(shapes)
    if "params" not in collections or set(collections) - set(_COLLECTIONS):
        raise ConfigError(f"{what}: its variable collections are {', '.join(collections) or 'none'}; the only "
                          "ones allowed are params (required) and batch_stats (BatchNorm running statistics)")

    def train_apply(variables, k):
        return model.apply(variables, zeros, train=True, mutable=["batch_stats"], rngs={"dropout": k})

    for call, apply in (('apply(variables, x, train=True, mutable=["batch_stats"])', train_apply),
                        ("apply(variables, x, train=False)",
                         lambda variables, k: model.apply(variables, zeros, train=False))):
        try:
            out = jax.eval_shape(apply, shapes, key)
        except Exception as e:  # noqa: BLE001
            raise failed(call, e, "it must run in both modes (train=True with mutable batch_stats)") from None
        if call.startswith("apply(variables, x, train=True"):
            out = out[0]
        _check_output(out, call, window, what)

    try:
        variables = model.init(key, zeros, train=False)
        x = jax.random.normal(jax.random.key(1), (2, window, 2), jnp.float32)
        first = np.asarray(model.apply(variables, x, train=False))
        second = np.asarray(model.apply(variables, x, train=False))
    except Exception as e:  # noqa: BLE001
        raise failed("initialising and applying it", e, "init and apply must run outside jax.eval_shape too") \
            from None
    if not all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree_util.tree_leaves(variables)):
        raise ConfigError(f"{what}: its initial variables hold NaN or inf; initialise every variable finite")
    if not np.isfinite(first).all():
        raise ConfigError(f"{what}: the initialised network's eval-mode output on a random batch holds NaN or "
                          "inf; it must be finite")
    if not np.array_equal(first, second):
        raise ConfigError(f"{what}: two eval-mode applies to the same input differ; train=False must be "
                          "deterministic (no dropout or random draws outside training)")


def _check_output(out: Any, call: str, window: int, what: str) -> None:
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape != (2, window, 2) or dtype != jnp.float32:
        got = f"{type(out).__name__}" if shape is None else f"shape {tuple(shape)} {dtype}"
        raise ConfigError(f"{what}: {call} returns {got}; it must return one array of the input's shape, "
                          f"(2, {window}, 2) float32 (batch, length, 2 channels)")


# ------------------------------------------------------------------ the workdir's record

def read_record(workdir: str) -> dict[str, Any] | None:
    path = os.path.join(workdir, SOURCE_RECORD)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def check_recorded_source(spec: str, workdir: str, allow_changed: bool = False) -> dict[str, Any] | None:
    """Before a resume or an evaluation of `workdir`: the source record of `spec` as it is now.

    A file spec is loaded from the absolute path the workdir recorded (so a relative spec works from
    any folder), or, if that file is gone, from the spec as given. A source whose sha256 differs from
    the recorded one is a ConfigError unless `allow_changed`. None for a workdir without a record
    (a fresh one); the caller then records `source_record(spec)`.
    """
    recorded = read_record(workdir)
    if recorded is None or recorded.get("model") != spec:
        return None
    return check_source(spec, recorded, f"{workdir} was trained", allow_changed,
                        f"recorded in {os.path.join(workdir, SOURCE_RECORD)}")


def check_source(spec: str, recorded: dict[str, Any], since: str, allow_changed: bool = False,
                 where_recorded: str = "recorded") -> dict[str, Any]:
    """The source record of `spec` as it is now, against `recorded` (a source_record kept in a workdir or
    a weights file): a recorded file is loaded from its recorded absolute path; a sha256 that differs is a
    ConfigError (one line: `since` says since when) unless `allow_changed`."""
    path = recorded.get("path")
    if recorded.get("kind") == "file" and path and os.path.isfile(path):
        pin(spec, path)
    elif recorded.get("kind") == "file" and path and not os.path.isfile(spec.rpartition(":")[0]):
        raise ConfigError(f"model file {path} ({where_recorded}) is gone; restore it there to rebuild the "
                          f"network {spec!r}")
    current = source_record(spec)
    old, new = recorded.get("sha256"), current.get("sha256")
    if old and old != new and not allow_changed:
        raise ConfigError(f"the source of model {spec!r} ({current.get('path') or path}) changed since {since} "
                          f"(sha256 {old[:12]}... then, {(new or 'none')[:12]}... now): restore the "
                          f"file, or pass {ALLOW_CHANGED_FLAG} to use it as it is now")
    return current
