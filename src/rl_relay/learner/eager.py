"""Keep torch's optimizers from importing ``torch._dynamo`` in the learner, which never compiles.

torch (2.x) marks its optimizers' methods as not to be traced by ``torch.compile``: the first
``zero_grad``, ``step`` or ``state_dict`` imports ``torch._dynamo`` (with sympy, torch.fx and
parts of torch.distributed) to make the mark, and every ``step`` calls the no-op
``torch._dynamo.graph_break()``. That import costs about 70% of what ``import
stable_baselines3`` costs, once per process, so once per chained training iteration, and in
eager mode (no ``torch.compile`` anywhere, as in the learner) the marks change nothing:
``torch._dynamo.disable(fn)`` runs ``fn`` with the frame-evaluation hook that only a
compilation installs switched off.

``install`` fills the cache slot torch's own wrapper fills on first use
(``fn.__dynamo_disable``) with ``fn`` itself, and replaces the optimizers' ``step`` wrapper
with one that does what torch's does minus the two no-op calls, so the same functions run in
the same order on the same tensors: training is bit-identical (tested). It recognises
torch's wrappers by their code objects and changes only what it recognises, so another
torch version gets, at worst, the import back. Only the learner's own process calls it
(``learner.__main__``): code that imports rl-relay's modules keeps torch as it is.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger(__name__)


def _noop() -> None:
    pass


def _eager_use_grad(func: Callable[..., Any]) -> Callable[..., Any]:
    """torch.optim.optimizer's ``_use_grad_for_differentiable`` without its two calls of
    ``torch._dynamo.graph_break()`` (a function whose body is its docstring)."""
    import torch

    def _use_grad(*args: Any, **kwargs: Any) -> Any:
        self = args[0]
        prev_grad = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(self.defaults["differentiable"])
            return func(*args, **kwargs)
        finally:
            torch.set_grad_enabled(prev_grad)

    functools.update_wrapper(_use_grad, func)
    _use_grad.relay_eager = True  # type: ignore[attr-defined]
    return _use_grad


def _optimizer_classes() -> Iterator[type]:
    import torch.optim

    for name in dir(torch.optim):
        value = getattr(torch.optim, name)
        if inspect.isclass(value) and issubclass(value, torch.optim.Optimizer):
            yield value


def _functions_of(obj: Any, depth: int = 2) -> Iterator[Any]:
    """``obj`` and the functions its closure holds, ``depth`` levels down."""
    yield obj
    if depth and getattr(obj, "__closure__", None):
        for cell in obj.__closure__:
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(content):
                yield from _functions_of(content, depth - 1)


def install() -> int:
    """Make torch's optimizers run without importing ``torch._dynamo``; returns how many
    wrappers were changed (0 when torch's code is not what this module knows, or when
    ``torch._dynamo`` is imported already, where the marks may matter)."""
    if "torch._dynamo" in sys.modules:
        return 0
    import torch
    import torch._compile
    import torch.optim.optimizer as optimizer_module

    disable_code = torch._compile._disable_dynamo(_noop).__code__
    use_grad_code = optimizer_module._use_grad_for_differentiable(_noop).__code__
    changed = 0
    candidates: list[Any] = []
    for cls in [torch.optim.Optimizer, *_optimizer_classes()]:
        for name, value in vars(cls).items():
            if getattr(value, "__code__", None) is use_grad_code:
                setattr(cls, name, _eager_use_grad(value.__wrapped__))
                changed += 1
                value = value.__wrapped__
            if callable(value):
                candidates.append(value)
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("torch.optim.") and module is not None:
            candidates += [v for v in vars(module).values() if inspect.isfunction(v)]
    for candidate in candidates:
        for function in _functions_of(candidate):
            if getattr(function, "__code__", None) is disable_code:
                original = function.__wrapped__
                if getattr(original, "__dynamo_disable", None) is None:
                    original.__dynamo_disable = original
                    changed += 1
    logger.debug("torch optimizers without torch._dynamo: %d wrappers changed", changed)
    return changed
