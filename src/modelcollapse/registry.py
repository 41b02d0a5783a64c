"""The one plug-in mechanism: every axis (data sources, model families, regimes, filters, metrics, chain tasks and
backends, executors) is a :class:`Registry` of named plug-ins.

Registration is ``register(name, *aliases, **traits)``: the canonical name, other names that resolve to it, and
traits that tell the engine what the plug-in can do (a metric computable from the fitted model alone says
``from_model=True``; a regime that needs every past synthetic chunk says ``keeps_history=True``). Traits are declared
where the plug-in is defined and read with :meth:`Registry.traits`.

Parameters are validated in one place, :meth:`Registry.build`, from the plug-in's signature: a class's ``__init__``
keyword parameters, a function's keyword-only parameters, with their annotations and defaults. Errors name the key,
the accepted values, the value received and a did-you-mean.

>>> SHAPES = Registry("shape.kind")
>>> @SHAPES.register("square", "box", sides=4)
... def square(*, size: float = 1.0):
...     return size * size
>>> SHAPES.canonical("box"), SHAPES.traits("box")["sides"]
('square', 4)
>>> SHAPES.build({"kind": "box", "size": 3.0})()
9.0
>>> SHAPES.resolve("box")
{'kind': 'square', 'size': 1.0}
>>> SHAPES.build({"kind": "square", "sise": 2})
Traceback (most recent call last):
...
modelcollapse.errors.ConfigError: unknown key 'shape.sise'; accepted keys here: size. Did you mean 'size'?
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .errors import ConfigError, ModelCollapseError, PluginError, choice_error, translate

T = TypeVar("T")


def strict_annotation(tp: Any) -> Any:
    """``tp`` with ``int`` and ``bool`` made strict (``true`` is not an integer, ``1`` is not a boolean) and ``float``
    refusing booleans and strings (an ``int`` is still a float), inside unions, ``list``, ``tuple`` and ``dict`` too.

    >>> from pydantic import TypeAdapter
    >>> TypeAdapter(strict_annotation(int | None)).validate_python(3)
    3
    >>> TypeAdapter(strict_annotation(list[float])).validate_python([1, 2.5])
    [1.0, 2.5]
    """
    import types
    import typing

    from pydantic import Strict, StrictBool, StrictInt

    if tp is bool:
        return StrictBool
    if tp is int:
        return StrictInt
    if tp is float:
        return typing.Annotated[float, Strict()]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if not args or origin is typing.Literal or origin is typing.Annotated:
        return tp
    mapped = tuple(a if a is Ellipsis else strict_annotation(a) for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return typing.Union[mapped]
    try:
        return origin[mapped if len(mapped) > 1 else mapped[0]]
    except TypeError:
        return tp


@functools.cache
def params_model(obj: Callable):
    """A pydantic model of ``obj``'s parameters: a class's ``__init__`` keyword parameters (``self`` and ``*args``
    excluded), or a function's keyword-only parameters, with their annotations and defaults. Numbers must be finite
    and ``int``/``bool``/``float`` are strict (:func:`strict_annotation`)."""
    from pydantic import ConfigDict, create_model

    target = obj.__init__ if isinstance(obj, type) else obj
    hints = inspect.get_annotations(target, eval_str=True)
    fields = {}
    for name, p in inspect.signature(target).parameters.items():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or name == "self":
            continue
        if not isinstance(obj, type) and p.kind is not p.KEYWORD_ONLY:
            continue  # a function plug-in's positional parameters are its inputs, not its settings
        fields[name] = (strict_annotation(hints.get(name, Any)), ... if p.default is p.empty else p.default)
    config = ConfigDict(extra="forbid", allow_inf_nan=False)
    return create_model(f"{getattr(obj, '__name__', 'plugin')}_params", __config__=config, **fields)


def validate_params(obj: Callable, params: dict[str, Any], key: str) -> dict[str, Any]:
    """``params`` validated against ``obj``'s signature, every default filled in; a one-line ConfigError otherwise."""
    from pydantic import ValidationError

    model = params_model(obj)
    try:
        valid = model.model_validate(params)
    except ValidationError as err:
        raise translate(err, key, list(model.model_fields)) from None
    return {name: getattr(valid, name) for name in model.model_fields}


def as_spec(spec: Any, key: str, choices: list[str]) -> dict[str, Any]:
    """A plug-in spec as a mapping: a bare name ``"mix"`` is ``{"kind": "mix"}``."""
    if isinstance(spec, str):
        return {"kind": spec}
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError(f"{key}.kind is required; accepted: {', '.join(choices)}; got {spec!r}.")
    return spec


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


class Registry(Generic[T]):
    """Plug-ins by name. ``key`` is the config key the names are chosen with, used in error messages."""

    def __init__(self, key: str):
        self.key = key
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._traits: dict[str, dict[str, Any]] = {}

    def register(self, name: str, *aliases: str, **traits: Any) -> Callable[[T], T]:
        """Decorator: register a plug-in under ``name`` (and ``aliases``), with ``traits``."""

        def add(obj: T) -> T:
            for n in (name, *aliases):
                if n in self._items or n in self._aliases:
                    raise ValueError(f"{self.key}: {n!r} is registered twice")
            self._items[name] = obj
            self._traits[name] = dict(traits)
            self._aliases.update({a: name for a in aliases})
            return obj

        return add

    def unregister(self, name: str) -> None:
        """Remove a plug-in and its aliases (a notebook cell that defines it again can then re-register it)."""
        name = self.canonical(name)
        del self._items[name], self._traits[name]
        self._aliases = {a: n for a, n in self._aliases.items() if n != name}

    def canonical(self, name: str, key: str | None = None) -> str:
        """The canonical name of ``name`` (itself, or what an alias stands for); a ConfigError if unknown. An unknown
        name first loads the installed packages' plug-ins (the ``modelcollapse.plugins`` entry points), once."""
        if isinstance(name, str) and name not in self._items and name not in self._aliases:
            load_entry_points()
        if isinstance(name, str) and name in self._items:
            return name
        if isinstance(name, str) and name in self._aliases:
            return self._aliases[name]
        raise choice_error(key or self.key, name, [*self._items, *self._aliases]) from None

    def get(self, name: str, key: str | None = None) -> T:
        """The plug-in called ``name`` (or an alias of it); a :class:`ConfigError` naming the choices if none."""
        return self._items[self.canonical(name, key)]

    def traits(self, name: str) -> dict[str, Any]:
        """The traits the plug-in declared at registration (an empty dict for none)."""
        return self._traits[self.canonical(name)]

    def trait(self, name: str, trait: str, default: Any = None) -> Any:
        return self.traits(name).get(trait, default)

    def with_trait(self, trait: str, value: Any = True) -> list[str]:
        """Canonical names of the plug-ins whose ``trait`` equals ``value``, sorted."""
        return sorted(n for n, t in self._traits.items() if t.get(trait) == value)

    def params(self, spec: Any, key: str | None = None) -> tuple[str, dict[str, Any]]:
        """``(canonical name, validated parameters)`` of a spec: a name or ``{kind: name, **parameters}``. ``key`` is
        the config section the spec sits at (``data``, ``loop.regime``), used in error messages."""
        key = key or self.key.removesuffix(".kind")
        bare = isinstance(spec, str)
        spec = as_spec(spec, key, self.names())
        name = self.canonical(spec["kind"], key if bare else f"{key}.kind")
        params = validate_params(self._items[name], {k: v for k, v in spec.items() if k != "kind"}, key)
        return name, params

    def build(self, spec: Any, key: str | None = None):
        """The plug-in with its validated parameters bound: an instance for a class, a partial for a function."""
        name, params = self.params(spec, key)
        obj = self._items[name]
        return obj(**params) if isinstance(obj, type) else functools.partial(obj, **params)

    def resolve(self, spec: Any, key: str | None = None, built: Any = None) -> dict[str, Any]:
        """The spec with its canonical name and every default filled in, as written to ``config.yaml``. A class
        plug-in is built (or ``built``, the caller's instance of this spec, is used) and its stored hyperparameters
        are read back, so what ``__init__`` settles (a data file's hash, say) is recorded too."""
        name, params = self.params(spec, key)
        obj = self._items[name]
        if isinstance(obj, type):
            built = built if built is not None else obj(**params)
            params = {k: getattr(built, k, v) for k, v in params.items()}
        return {"kind": name, **{k: _plain(v) for k, v in params.items()}}

    def names(self) -> list[str]:
        """Canonical names, sorted."""
        return sorted(self._items)

    def aliases(self) -> dict[str, str]:
        """``{alias: canonical name}``."""
        return dict(self._aliases)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


@contextlib.contextmanager
def running(kind: str, name: str) -> Iterator[None]:
    """Around a call into a plug-in's code: what it raises becomes a :class:`PluginError` naming it ("metric 'mine'
    raised ZeroDivisionError: division by zero"), raised ``from`` the original, so ``__cause__`` (and the CLI's
    ``--debug`` traceback) still leads into the plug-in's function. Our own errors pass unchanged: they name what
    failed already.

    >>> with running("metric", "mine"):
    ...     1 / 0
    Traceback (most recent call last):
    ...
    modelcollapse.errors.PluginError: metric 'mine' raised ZeroDivisionError: division by zero
    """
    try:
        yield
    except ModelCollapseError:
        raise
    except Exception as err:
        detail = f": {err}" if str(err) else ""
        raise PluginError(f"{kind} {name!r} raised {type(err).__name__}{detail}") from err


# -- plug-in modules: the config's `plugins:` list, --plugin, and installed packages' entry points ---------------------
ENTRY_POINT_GROUP = "modelcollapse.plugins"
_entry_points_loaded = False


def load_entry_points() -> list[str]:
    """Import every ``modelcollapse.plugins`` entry point of the installed packages (once per process), so their
    plug-ins register themselves. Returns the entry points' names (empty after the first call). A package declares
    one in its ``pyproject.toml``::

        [project.entry-points."modelcollapse.plugins"]
        mypkg = "mypkg.collapse_plugins"

    Importing a module runs its code: install only packages you trust. A failing entry point is a ConfigError naming
    it (the name being resolved may be one it would have registered)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return []
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    names = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as err:
            raise ConfigError(f"the {ENTRY_POINT_GROUP} entry point {ep.name!r} ({ep.value}) failed to import: "
                              f"{type(err).__name__}: {err}") from err
        names.append(ep.name)
    return names


def import_plugins(specs: list[str] | tuple[str, ...] | None, key: str = "plugins") -> list[str]:
    """Import plug-in modules so that their ``register`` calls run: each spec is a module name (``mypkg.plugins``)
    or a Python file (``my_metrics.py``, relative to the working directory). Importing runs the module's code, so
    list only code you trust. A module is imported once per process (a file is keyed by its resolved path). Returns
    the module names; a ConfigError names the spec that cannot be imported."""
    names = []
    for spec in specs or ():
        spec = str(spec)
        if spec.endswith(".py") or "/" in spec or "\\" in spec:
            from pathlib import Path

            path = Path(spec).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"{key}: plug-in file {spec!r} does not exist (resolved to {str(path)!r}).")
            name = "modelcollapse_plugin_" + short_sha256(str(path))
            if name not in sys.modules:
                loader_spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(loader_spec)
                sys.modules[name] = module
                try:
                    loader_spec.loader.exec_module(module)
                except Exception as err:
                    del sys.modules[name]
                    raise ConfigError(f"{key}: plug-in file {spec!r} failed to import: {type(err).__name__}: {err}") from err
        else:
            name = spec
            try:
                importlib.import_module(spec)
            except ImportError as err:
                raise ConfigError(f"{key}: cannot import plug-in module {spec!r} ({err}); give a module name on the "
                                  "Python path or a .py file.") from err
        names.append(name)
    return names


def short_sha256(text: str) -> str:
    """The first 16 hex digits of ``text``'s sha256: a stable module name for a plug-in file, from its path."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]
