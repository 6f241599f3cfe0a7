"""Records: small classes of named fields, declared as dataclasses are.

    class Cancel(Record, frozen=True):
        ref: str
        line: int = field(default=0, compare=False)

A record class gets what ``@dataclass(slots=True)`` (with ``frozen=True``:
``@dataclass(frozen=True, slots=True)``) would give it: an ``__init__``
taking the fields in order, positionally or by name, with their defaults
(then calling ``__post_init__`` if the class has one); ``__repr__``
(``Cancel(ref='7')``, without the fields declared ``repr=False``);
``__eq__`` between records of the same class, on the fields not declared
``compare=False``; ``__slots__`` and ``__match_args__``; and when frozen,
``__hash__`` of those fields and a ``FrozenInstanceError`` on any
assignment (a mutable record is unhashable).  :func:`replace` is
``dataclasses.replace``.

Why not dataclasses: ``@dataclass`` writes each class's methods as source
text and compiles them when the class is created, and importing
``dataclasses`` imports ``inspect``, ``ast`` and ``dis``.  A filter program
creates the pit's two dozen message and signature kinds before it reads its
input: with dataclasses, more start-up than a short run's whole work (the
figures: docs/pit-book.md, "Start-up").  A record's methods are its base class's,
reading the field names the class keeps; an instance costs what a
dataclass instance costs.
"""

from __future__ import annotations

from operator import attrgetter

__all__ = ["Record", "FrozenInstanceError", "field", "replace"]


class FrozenInstanceError(AttributeError):
    """An assignment to a field of a frozen record."""


_MISSING = object()


class _Field:
    __slots__ = ("default", "repr", "compare")

    def __init__(self, default, repr: bool, compare: bool):
        self.default, self.repr, self.compare = default, repr, compare


def field(*, default=_MISSING, repr: bool = True, compare: bool = True):
    """A field's default and whether ``__repr__`` and ``__eq__``/``__hash__``
    use it (``dataclasses.field`` without factories)."""
    return _Field(default, repr, compare)


class _RecordType(type):
    """Makes a record class of the annotations of its body: their names
    become its ``__slots__``, their values its defaults."""

    def __new__(mcls, name, bases, ns, frozen: bool = False):
        if any(getattr(b, "_fields", ()) for b in bases):
            raise TypeError(f"{name}: a record class cannot extend another with fields")
        names = tuple(ns.get("__annotations__", {}))
        defaults, shown, compared = {}, [], []
        for n in names:
            f = ns.pop(n, _MISSING)
            if not isinstance(f, _Field):
                f = _Field(f, True, True)
            if f.default is not _MISSING:
                defaults[n] = f.default
            elif defaults:
                raise TypeError(f"{name}: field {n!r} without a default follows one with a default")
            if f.repr:
                shown.append(n)
            if f.compare:
                compared.append(n)
        ns["__slots__"] = ns["__match_args__"] = names
        if not names:                               # Record itself
            return super().__new__(mcls, name, bases, ns)
        ns["_fields"], ns["_defaults"], ns["_shown"] = names, defaults, tuple(shown)
        ns["_tail"] = tuple(defaults.values())      # the last fields' defaults, in order
        ns["_index"] = {n: i for i, n in enumerate(names)}
        ns["_post_init"] = ns.get("__post_init__")
        if len(compared) > 1:
            ns["_key"] = staticmethod(attrgetter(*compared))
        elif compared:
            one = attrgetter(compared[0])
            ns["_key"] = staticmethod(lambda obj: (one(obj),))
        else:
            ns["_key"] = staticmethod(lambda obj: ())
        if frozen:
            ns.setdefault("__setattr__", _refuse_setattr)
            ns.setdefault("__delattr__", _refuse_delattr)
        else:
            ns.setdefault("__hash__", None)          # equal by value and mutable: unhashable
        cls = super().__new__(mcls, name, bases, ns)
        # The slots' own setters: what object.__setattr__ finds, without the search.
        cls._setters = tuple(cls.__dict__[n].__set__ for n in names)
        return cls


def _refuse_setattr(self, name, value):
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _refuse_delattr(self, name):
    raise FrozenInstanceError(f"cannot delete field {name!r}")


class Record(metaclass=_RecordType):
    """Base class of records (see the module's documentation)."""

    # What _RecordType sets on each record class (no annotations here: they
    # would be read as fields): its field names in order, their defaults by
    # name and in order (defaults are the last fields'), each name's
    # place, the names __repr__ shows, __post_init__ or None, the values
    # __eq__ and __hash__ compare, and a setter for each field.
    _fields = ()
    _defaults = {}
    _tail = ()
    _index = {}
    _shown = ()
    _post_init = None
    _key = staticmethod(lambda obj: ())
    _setters = ()

    def __init__(self, *args, **kwargs):
        cls = self.__class__
        if kwargs or len(args) != len(cls._setters):
            args = cls._arguments(args, kwargs)
        for put, value in zip(cls._setters, args):
            put(self, value)
        if cls._post_init is not None:
            cls._post_init(self)

    @classmethod
    def _arguments(cls, args: tuple, kwargs: dict) -> list:
        """Every field's value, from positional *args*, *kwargs* and the
        defaults; TypeError when they do not fit the fields."""
        names, first, given = cls._fields, len(cls._fields) - len(cls._defaults), len(args)
        if given > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} arguments "
                            f"but {given} were given")
        values = list(args)
        if given < first:
            values += [_MISSING] * (first - given)
        values += cls._tail[max(given - first, 0):]
        for name, value in kwargs.items():
            i = cls._index.get(name)
            if i is None:
                raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}")
            if i < given:
                raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
            values[i] = value
        for i in range(given, first):
            if values[i] is _MISSING:
                raise TypeError(f"{cls.__name__}() missing required argument: {names[i]!r}")
        return values

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._shown)
        return f"{self.__class__.__qualname__}({fields})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return self._key(self) == self._key(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key(self))

    def __reduce__(self):
        # Frozen: pickle and copy must not set the fields one by one.
        return (_rebuild, (self.__class__, tuple([getattr(self, n) for n in self._fields])))


def _rebuild(cls, values):
    obj = cls.__new__(cls)
    for put, value in zip(cls._setters, values):
        put(obj, value)
    return obj


def replace(obj: Record, **changes) -> Record:
    """A new record of *obj*'s class with *changes* to its fields
    (``dataclasses.replace``); its ``__post_init__`` runs again."""
    cls = obj.__class__
    for name in changes:
        if name not in cls._index:
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}")
    # every field given, in order: the constructor's positional path
    return cls(*[changes[n] if n in changes else getattr(obj, n) for n in cls._fields])
