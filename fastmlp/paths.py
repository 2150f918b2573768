"""Where fastmlp keeps files of its own: one root for every cache (generated kernels,
downloaded datasets), so one setting moves them all."""
import os


def cache_root():
    """$FASTMLP_CACHE_DIR, else $XDG_CACHE_HOME/fastmlp, else ~/.cache/fastmlp.

    Each user of the cache takes a subdirectory: ``kernels`` for generated training kernels,
    ``datasets/<name>`` for downloaded data.
    """
    root = os.environ.get("FASTMLP_CACHE_DIR")
    if root:
        return root
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastmlp")
