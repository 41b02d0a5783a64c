"""The one plug-in mechanism: every axis (data sources, model families, regimes, filters, metrics, chain tasks and
backends, executors) is a :class:`Registry` of named plug-ins.

Registration is ``register(name, *aliases, **traits)``: the canonical name, other names that resolve to it, and
traits that tell the engine what the plug-in can do (a metric computable from the fitted model alone says
``from_model=True``; a regime that needs every past synthetic chunk says ``keeps_history=True``; a family that has
``moments()`` says ``provides=("moments",)``). Traits are the one way a plug-in declares a capability: the engine reads
them with :meth:`Registry.traits` / :meth:`Registry.provides` and never probes a plug-in's methods. A registry made
with ``traits={name: default}`` accepts only those traits (a misspelt one fails at registration) and fills in the
defaults; :mod:`modelcollapse.testing` checks that what a plug-in declares is what it does.

Code a config names (a ``plugins:`` module, ``model.estimator``, a verifier's ``function``) is loaded by one loader,
:func:`load_code`, with one syntax (``module:attr``, a bare ``module``, or a ``.py`` file), behind one consent gate,
:func:`consent`.

Parameters are validated in one place, :meth:`Registry.build`, from the plug-in's signature: a class's ``__init__``
keyword parameters, a function's keyword-only parameters, with their annotations and defaults. Errors name the key,
the accepted values, the value received and a did-you-mean.

>>> SHAPES = Registry("shape.kind", traits={"sides": 0})
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

    def __init__(self, key: str, traits: dict[str, Any] | None = None):
        self.key = key
        self.defaults = traits  # the accepted traits and their defaults (None: any trait, no defaults)
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._traits: dict[str, dict[str, Any]] = {}

    def register(self, name: str, *aliases: str, **traits: Any) -> Callable[[T], T]:
        """Decorator: register a plug-in under ``name`` (and ``aliases``), with ``traits``."""

        unknown = sorted(set(traits) - set(self.defaults)) if self.defaults is not None else []
        if unknown:
            raise ValueError(
                f"{self.key}: {name!r} declares unknown trait(s) {', '.join(unknown)}; accepted: "
                f"{', '.join(sorted(self.defaults))}"
            )

        def add(obj: T) -> T:
            for n in (name, *aliases):
                if n in self._items or n in self._aliases:
                    raise ValueError(f"{self.key}: {n!r} is registered twice")
            self._items[name] = obj
            self._traits[name] = {**(self.defaults or {}), **traits}
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

    def provides(self, name: str, need: str) -> bool:
        """Whether plug-in ``name`` declares ``need``: listed in its ``provides`` trait (methods and attributes it
        offers beyond its axis's protocol), or a fitted attribute (ending in ``_``) listed in its ``fitted`` trait,
        where ``fitted=None`` means "not known before fit" and admits any (checked when the metric runs)."""
        traits = self.traits(name)
        if need in traits.get("provides", ()):
            return True
        if need.endswith("_") and "fitted" in traits:
            return traits["fitted"] is None or need in traits["fitted"]
        return False

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
            raise ConfigError(
                f"the {ENTRY_POINT_GROUP} entry point {ep.name!r} ({ep.value}) failed to import: "
                f"{type(err).__name__}: {err}"
            ) from err
        names.append(ep.name)
    return names


def consent(what: str, value: Any, trust_code: bool) -> None:
    """The one consent gate for code named by a config or a flag: ``what`` (``plugins``, ``--plugin``,
    ``model.estimator``) ``value`` would be imported and run, so it is refused unless ``trust_code`` (``--trust-code``,
    ``trust_code=True``), before anything is imported. This mirrors transformers' ``trust_remote_code``."""
    if trust_code:
        return
    how = "add --trust-code" if what.startswith("--") else "pass --trust-code (or trust_code=True in Python)"
    raise ConfigError(
        f"{what} {value!r} names Python code to import and run; nothing was imported: {how} if you trust it."
    )


def is_file_spec(where: str) -> bool:
    """Whether the module part of a code spec names a Python file (``my_metrics.py``, ``dir/m.py``)."""
    return where.endswith(".py") or "/" in where or "\\" in where


def load_code(spec: str, key: str, attr: bool = False) -> Any:
    """The one loader for code a config names: ``module``, ``module:attr``, ``path/file.py`` or ``path/file.py:attr``
    (a file relative to the working directory). Returns the module, or its attribute ``attr`` after the colon;
    ``attr=True``: an attribute is required. The dotted ``package.module.Attr`` of older configs still loads where an
    attribute is required, with a DeprecationWarning. A module is imported once per process (a file is keyed by its
    resolved path). Importing runs the code: callers pass :func:`consent` first. A ConfigError names ``key``."""
    spec = str(spec)
    where, colon, name = spec.rpartition(":")
    if not colon or "/" in name or "\\" in name:  # no attribute (a colon inside a Windows path is not one)
        where, colon, name = spec, "", ""
    if attr and not colon:
        where, _, name = spec.rpartition(".")
        if not where or is_file_spec(spec):
            raise ConfigError(f"{key} must be 'module:attr' (or 'file.py:attr'); got {spec!r}.")
        import warnings

        warnings.warn(
            f"{key} {spec!r}: write it as {where + ':' + name!r}; the dotted form is deprecated.",
            DeprecationWarning,
            stacklevel=2,
        )
    module = _import_file(where, key) if is_file_spec(where) else _import_module(where, key)
    if not name:
        return module
    obj = getattr(module, name, None)
    if obj is None:
        from .errors import did_you_mean

        public = [n for n in dir(module) if not n.startswith("_")]
        raise ConfigError(f"{key} {spec!r}: {where!r} has no {name!r}.{did_you_mean(name, public)}")
    return obj


def _import_module(name: str, key: str):
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ConfigError(
            f"{key}: cannot import module {name!r} ({err}); give a module on the Python path or a .py file."
        ) from err


def _import_file(spec: str, key: str):
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
    return sys.modules[name]


def import_plugins(specs: list[str] | tuple[str, ...] | None, key: str = "plugins") -> list[str]:
    """Import plug-in modules so that their ``register`` calls run: each spec is a module name (``mypkg.plugins``)
    or a Python file (``my_metrics.py``), loaded by :func:`load_code`. Returns the modules' names."""
    return [load_code(spec, key).__name__ for spec in specs or ()]


def short_sha256(text: str) -> str:
    """The first 16 hex digits of ``text``'s sha256: a stable module name for a plug-in file, from its path."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]
