"""Moved to the ecg_jax.data package (one stage per module); kept while callers move."""

from ecg_jax.data import *  # noqa: F401,F403
from ecg_jax.data import __all__  # noqa: F401
from ecg_jax.data.cache import CACHE_ENV, load_cache, resolve_cache_dir, save_cache  # noqa: F401
