"""Patch classes and functions by name ("pkg.mod:Class", "pkg.mod:func", "pkg.mod:Class.method").

Patches are registered before the workload runs and applied the moment their module has finished
executing, through an import hook on sys.meta_path, so nothing is imported early (importing fairseq
ahead of its own setup would change what it does) and nothing is missed: fairseq's activation
checkpointing captures ``forward`` when the model is built, so hooks must be in place before that.
A module already imported when a patch is registered is patched at once.
"""
import functools
import sys
from typing import Callable, Dict, List, Tuple

# A patch receives the original callable and returns its replacement.
Patch = Callable[[Callable], Callable]


def split_target(target: str) -> Tuple[str, List[str]]:
    module, sep, attrs = target.partition(":")
    if not sep or not module or not attrs:
        raise ValueError(f"{target!r}: expected 'package.module:Name' or 'package.module:Class.method'")
    return module, attrs.split(".")


class Patcher:
    def __init__(self):
        self._pending: Dict[str, List[Tuple[str, List[str], Patch]]] = {}

    def add(self, target: str, patch: Patch) -> None:
        module_name, attrs = split_target(target)
        self._pending.setdefault(module_name, []).append((target, attrs, patch))
        # "__main__" means the workload's script, run later (moe_run/entry.py), not the bootstrap
        module = sys.modules.get(module_name) if module_name != "__main__" else None
        if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
            self.apply_to(module_name, module)

    def install(self) -> None:
        if not any(isinstance(f, _PatchFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _PatchFinder(self))

    def pending_modules(self):
        return set(self._pending)

    def unapplied(self) -> List[str]:
        return [target for entries in self._pending.values() for target, _, _ in entries]

    def apply_to(self, module_name: str, namespace) -> None:
        """Apply the patches registered for ``module_name`` to ``namespace`` (that module, or the
        ``__main__`` module a ``-m`` run executes its code in)."""
        for target, attrs, patch in self._pending.pop(module_name, []):
            try:
                owner = namespace
                for name in attrs[:-1]:
                    owner = getattr(owner, name)
                # the raw attribute, so that staticmethod/classmethod wrappers are kept as they are
                raw = vars(owner)[attrs[-1]] if attrs[-1] in vars(owner) else getattr(owner, attrs[-1])
            except (AttributeError, TypeError):
                raise AttributeError(f"moe-run profile target {target}: {module_name} has no "
                                     f"{'.'.join(attrs)}; check profile.hooks/region/step") from None
            if isinstance(raw, (staticmethod, classmethod)):
                replacement = type(raw)(_wrapped(patch, raw.__func__))
            else:
                replacement = _wrapped(patch, raw)
            setattr(owner, attrs[-1], replacement)


def _wrapped(patch: Patch, original: Callable) -> Callable:
    replacement = patch(original)
    functools.update_wrapper(replacement, original)
    return replacement


class _PatchFinder:
    """Finds nothing itself: for a module with pending patches it asks the other finders for the
    spec and wraps the loader so the patches run right after the module's code."""

    def __init__(self, patcher: Patcher):
        self._patcher = patcher

    def find_spec(self, fullname, path, target=None):
        if fullname not in self._patcher.pending_modules():
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, fullname, self._patcher)
        return spec

    def invalidate_caches(self):
        pass


class _PatchingLoader:
    # Not a subclass of importlib.abc.Loader: its default methods would hide the inner loader's
    # (get_source, get_resource_reader, ...), which __getattr__ forwards.
    def __init__(self, inner, fullname: str, patcher: Patcher):
        self._inner = inner
        self._fullname = fullname
        self._patcher = patcher

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        self._patcher.apply_to(self._fullname, module)

    def __getattr__(self, name):
        return getattr(self._inner, name)

