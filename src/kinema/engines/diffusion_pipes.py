"""Helpers on diffusers pipeline objects (`engines/diffusion.py`, and the families in
`engines/wan.py`, `engines/ltx.py`): pipelines sharing one set of weights, a scheduler's
shift, and what follows a failed call (memory freed, out-of-memory told apart). torch
is imported inside each: this module loads on machines without it."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("kinema.engines.diffusion")


def release(pipe: Any) -> None:
    """After a failed or stopped call: offload hooks reset, cached GPU memory freed."""
    import gc

    import torch

    try:
        pipe.maybe_free_model_hooks()
    except Exception:  # nothing to free: the pipeline never got that far
        log.debug("maybe_free_model_hooks failed", exc_info=True)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(error, oom):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def with_shift(scheduler: Any, shift: float) -> Any:
    """A copy of a flow-matching scheduler with another shift (Wan's UniPC calls it
    flow_shift; FlowMatchEuler calls it shift, and dynamic shifting would ignore it)."""
    config = dict(scheduler.config)
    if "flow_shift" in config:
        return type(scheduler).from_config(config, flow_shift=shift)
    if "shift" in config:
        return type(scheduler).from_config(config, shift=shift, use_dynamic_shifting=False)
    raise RuntimeError(f"flow_shift: the scheduler {type(scheduler).__name__} has no shift")


def sibling(base: Any, cls: type, **extra: Any) -> Any:
    """A pipeline of class `cls` over `base`'s modules (no weights loaded or copied):
    diffusers' `from_pipe` would also cast every module to one dtype, undoing the
    fp32 parts of a mixed-precision load. Each pipeline gets its own scheduler (they
    hold per-call state)."""
    import inspect

    components = dict(base.components)
    config = dict(base.config)
    kwargs: dict[str, Any] = {}
    for name, parameter in inspect.signature(cls).parameters.items():
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        if name in extra:
            kwargs[name] = extra[name]
        elif name in components:
            kwargs[name] = components[name]
        elif name in config and not isinstance(config[name], (list, tuple)):
            kwargs[name] = config[name]
        elif parameter.default is parameter.empty:
            kwargs[name] = None
    scheduler = kwargs.get("scheduler")
    if scheduler is not None:
        kwargs["scheduler"] = type(scheduler).from_config(scheduler.config)
    return cls(**kwargs)
