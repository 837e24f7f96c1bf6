"""Running the workload: ``--entry MODULE:FUNC``, ``-m MODULE`` or a script path.

``--entry`` imports MODULE under its own name and calls FUNC with ``sys.argv = [MODULE, ARGS...]``.

``-m`` and scripts run as ``__main__``, like ``python -m`` / ``python script.py``. That alone would
defeat the patches: a module run as __main__ is never imported under its own name, so a region such
as ``fairseq_cli.eval_lm:eval_lm`` would not be patched in the namespace that actually calls it. So the
code is executed in two parts: everything before the first top-level ``if __name__ == "__main__":``,
then the patches naming that module are applied to the __main__ namespace, then the rest.
"""
import ast
import importlib
import importlib.util
import os
import runpy
import sys
import types
from typing import Optional


def run_entry(kind: str, target: str, args, patcher) -> None:
    # what `python -m` / `python script.py` put first on sys.path (after the bootstrap's own folder)
    sys.path.insert(1, os.path.dirname(os.path.abspath(target)) if kind == "script" else os.getcwd())
    if kind == "entry":
        module_name, _, func_path = target.partition(":")
        sys.argv = [module_name, *args]
        func = importlib.import_module(module_name)
        for name in func_path.split("."):
            func = getattr(func, name)
        result = func()
        # like a console_scripts wrapper: an int result is the exit status
        if isinstance(result, int) and not isinstance(result, bool) and result != 0:
            raise SystemExit(result)
    elif kind == "module":
        sys.argv = [target, *args]
        _run_module(target, patcher)
    else:
        sys.argv = [target, *args]
        with open(target, "rb") as f:
            source = f.read()
        _run_as_main(source, target, patcher, module_name="__main__", spec=None)


def _run_module(module_name: str, patcher) -> None:
    spec = importlib.util.find_spec(module_name)
    if spec is None:
        raise ModuleNotFoundError(f"No module named {module_name!r}")
    if spec.submodule_search_locations is not None:  # a package: run its __main__
        return _run_module(module_name + ".__main__", patcher)
    source = spec.loader.get_source(module_name) if hasattr(spec.loader, "get_source") else None
    if source is None:
        print(f"moe-run: no source for {module_name}; running it without patching its own functions",
              file=sys.stderr)
        runpy.run_module(module_name, run_name="__main__", alter_sys=True)
        return
    _run_as_main(source, spec.origin, patcher, module_name=module_name, spec=spec)


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    sides = [test.left, *test.comparators]
    return (len(sides) == 2 and isinstance(test.ops[0], ast.Eq)
            and any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def _run_as_main(source, filename: str, patcher, module_name: str, spec: Optional[object]) -> None:
    tree = ast.parse(source, filename)
    split = next((i for i, node in enumerate(tree.body) if _is_main_guard(node)), len(tree.body))
    main = types.ModuleType("__main__")
    main.__dict__.update({
        "__file__": filename,
        "__spec__": spec,
        "__loader__": getattr(spec, "loader", None),
        "__package__": getattr(spec, "parent", None) or None,
        "__builtins__": __builtins__,
    })
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = main
    try:
        head = ast.Module(body=tree.body[:split], type_ignores=[])
        exec(compile(head, filename, "exec"), main.__dict__)
        for name in {module_name, "__main__"}:
            patcher.apply_to(name, main)
        tail = ast.Module(body=tree.body[split:], type_ignores=[])
        exec(compile(tail, filename, "exec"), main.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved
