"""Generated training kernels for small networks: which networks get one, and where its
source (cpu/codegen.py) is cached and loaded from.

The generated kernels hard-code the plain mean over the batch, the l2 term (l2/2) sum ||W||^2
and a constant learning rate. A fit with sample weights, with l2_per_sample (scikit-learn's
l2 / sum(w), which changes with each batch's weight) or with a schedule other than Constant
trains with the generic kernel (cpu/steps.train_steps) instead (`supports`): one template
less to keep in step with the generic loop, for the same numbers; the cost is the generic
kernel's speed on small networks (xor: about 1.3 us a step instead of 0.1 us).

Sources go to a cache directory (cache_dir) under a name that hashes them and the kernel
modules they import, so numba's on-disk cache applies: a new architecture compiles once per
layout, in seconds, then loads from the cache.
"""
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading

import numpy as np

from .. import config
from ..files import atomic_write, cache_root
from ..core.jitcache import load_cached, source_digest
from ..core.schedules import CONSTANT
from .codegen import COLUMNS, ROWS, generate_columns_source, generate_rows_source

def supports(weighted, schedule_code, l2_per_sample):
    """Whether a generated kernel can train a fit with these options (see the docstring)."""
    return not weighted and schedule_code == CONSTANT and not l2_per_sample


def eligible(spec):
    """True when spec is small enough for a generated kernel (config.SPECIALIZE_MAX_WEIGHTS)."""
    return config.SPECIALIZE is not False and spec.n_weights <= config.SPECIALIZE_MAX_WEIGHTS


def expected_compile_seconds(spec):
    """About how long a generated kernel for spec takes to compile (config.py's figures)."""
    return config.SPECIALIZE_COMPILE_SECONDS + config.SPECIALIZE_COMPILE_PER_WEIGHT * spec.n_weights


def worth_using(kernel, args, spec, steps):
    """Whether a fit of `steps` steps should train with the generated kernel (called with
    args): always with config.SPECIALIZE True; with "auto" when it is compiled already (in
    memory, or in numba's disk cache, which this loads), or when its saving over the generic
    kernel, config.SPECIALIZE_STEP_SAVING a step, pays for its expected compile. The
    arithmetic comes first: looking the kernel up types every argument (about 1 ms), which
    a long fit of a tiny network would pay again in each of its segments."""
    if config.SPECIALIZE is True:
        return True
    if steps * config.SPECIALIZE_STEP_SAVING > expected_compile_seconds(spec):
        return True
    return load_cached(kernel, *args)


# -- the cache of generated modules ----------------------------------------------------------

_loaded = {}
_lock = threading.Lock()


def cache_dir():
    """Where generated sources (and numba's cache of them) go: $FASTMLP_CACHE_DIR, else
    $XDG_CACHE_HOME/fastmlp or ~/.cache/fastmlp, else a directory in the temp dir."""
    return os.path.join(cache_root(), "kernels")


def _holds(path, source):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read() == source
    except (OSError, UnicodeDecodeError):
        return False


def _write(directory, name, source):
    """directory/name holding exactly source: written atomically when missing, and replaced
    when it holds anything else (a file truncated by a full disk or a crash, a hand edit),
    which would otherwise fail to import on every later fit."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    if not _holds(path, source):
        # another process may have written the same text first: fine
        atomic_write(path, lambda f: f.write(source), text=True, encoding="utf-8")
    return path


def _import(path, module_name, source):
    """The module of the generated source, executed from the text just checked (not from a
    .pyc, which could be stale or damaged) under the file's path, so numba's cache finds it."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # numba's cache finds functions through their module
    try:
        exec(compile(source, path, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _tolerate_damaged_cache(dispatcher):
    """Make a damaged entry in numba's on-disk cache of a generated kernel (a truncated
    index or data file) a cache miss that is compiled and rewritten; numba itself unpickles
    it unguarded, so every later call would raise."""
    cache = getattr(dispatcher, "_cache", None)
    load, save = getattr(cache, "load_overload", None), getattr(cache, "save_overload", None)
    if load is None or save is None or not hasattr(cache, "flush"):
        return dispatcher  # a numba whose cache works differently: left as it is
    damaged = []

    def load_overload(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception as exc:  # unpickling a cut-off file raises any of several kinds
            damaged.append(exc)
            try:
                cache.flush()  # an empty index: the new entry replaces the damaged one
            except OSError:
                pass
            return None

    def save_overload(sig, data):
        try:
            save(sig, data)
        except Exception:
            if not damaged:
                raise  # only a cache found damaged (and not repaired) may fail to save

    cache.load_overload, cache.save_overload = load_overload, save_overload
    return dispatcher


def layout_for(batch_size):
    """The layout of the generated kernel that trains batches of batch_size rows."""
    return COLUMNS if batch_size >= config.SPECIALIZE_COLUMNS_MIN_BATCH else ROWS


def column_scratch(spec, batch_size, dtype):
    """The scratch argument of a COLUMNS kernel: separate (units, rows) arrays, made once
    per fit (see generate_columns_source)."""
    widths = [layer.n_out for layer in spec.layers]
    shapes = widths + widths + [spec.n_outputs, spec.n_inputs, spec.n_outputs]
    return tuple(np.zeros((units, batch_size), dtype) for units in shapes)


def for_fit(spec, loss, optimizer, batch_size, dtype):
    """(generated train_steps, its extra arguments) for a fit, or (None, ()) where the
    generic kernel trains: a network too large, or no writable directory for the source.
    optimizer is an optimizers.Optimizer: its variant is the update rule written in."""
    if not eligible(spec):
        return None, ()
    layout = layout_for(batch_size)
    found = kernel(spec, loss, optimizer.variant, layout)
    if found is None or layout == ROWS:
        return found, ()
    return found, (column_scratch(spec, batch_size, dtype),)


def kernel(spec, loss, variant, layout=ROWS):
    """The generated train_steps for (spec, loss code, optimizer variant, layout), or None if
    no directory for its source is writable (the caller then uses the generic kernel)."""
    key = (spec.n_inputs, spec.layers, loss, variant, layout)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        generate = generate_columns_source if layout == COLUMNS else generate_rows_source
        source = generate(spec, loss, variant)
        # The kernel sources' digest joins the name: numba's cache cannot see edits in the
        # modules a generated file imports (jitcache.py).
        digest = hashlib.sha256((source_digest() + source).encode()).hexdigest()[:20]
        module_name = f"fastmlp_kernel_{digest}"
        found = None
        for directory in (cache_dir(),
                          os.path.join(tempfile.gettempdir(),
                                       f"fastmlp-{getattr(os, 'getuid', lambda: 0)()}")):
            try:
                path = _write(directory, module_name + ".py", source)
            except OSError:
                continue
            found = _tolerate_damaged_cache(_import(path, module_name, source).train_steps)
            break
        _loaded[key] = found
        return found
