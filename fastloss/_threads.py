"""fastloss's thread count: one setting, honoured by every kernel.

Resolution of ``num_threads=None`` (the default of every loss):
  1. ``fastloss.set_num_threads(n)`` if it was called (n >= 1), else
  2. OpenMP's default for this thread (``OMP_NUM_THREADS``, else the cores available).
  3. Either way, ``threadpoolctl.threadpool_limits`` applies: fastloss registers itself as a
     threadpoolctl controller (user_api ``"fastloss"``), so ``threadpool_limits(1)`` limits it.
A per-call ``num_threads=n`` overrides all of these for that call.

After ``os.fork()``: GNU libgomp is not fork-safe -- a child whose parent had started an OpenMP thread
team waits forever at its next parallel region (the team's threads do not exist in the child), and
the same holds for a ``ThreadPoolExecutor`` created before the fork.  So, as PyTorch does, a forked
child of a process that had run multi-threaded work (a fastloss call with more than one thread, or
torch loaded, whose intra-op pool is libgomp's too) runs every loss on one thread.  Results are the
same bits (reductions do not depend on the thread count).  Spawned processes are unaffected.
"""
import numbers
import os
import sys
import weakref

from ._kernels import _runtime


def get_num_threads() -> int:
    """The number of threads a loss uses when called with ``num_threads=None``.

    That is the value of :func:`set_num_threads` if it was called, else OpenMP's default for this
    thread (``OMP_NUM_THREADS``, else the cores available), in either case within the limit of an
    active ``threadpoolctl.threadpool_limits`` (fastloss registers itself with threadpoolctl as
    ``user_api="fastloss"``).

    Returns
    -------
    int
        The default thread count, at least 1.

    See Also
    --------
    set_num_threads

    Examples
    --------
    >>> import fastloss as fl
    >>> fl.get_num_threads() >= 1
    True
    """
    return _runtime.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the default number of threads of every loss (the ``num_threads=None`` value).

    A per-call ``num_threads=`` overrides it.  Results do not depend on it: reductions are bitwise
    identical for every thread count.  Small inputs run serially whatever the setting.

    Use no more threads than the cores this process actually gets: a call waits at its end for every
    one of its threads, so when another process holds a core, a thread that is not scheduled holds the
    call up for a scheduler time slice (a cache-sized Huber mean at 2 threads on 2 busy cores: ~8 ms
    instead of ~70 us).  On a shared or oversubscribed machine, ``set_num_threads(1)`` (or per worker,
    the cores it owns) is the faster setting.

    Parameters
    ----------
    n : int
        Threads, ``n >= 1``; ``0`` restores the default (follow OpenMP's).

    Raises
    ------
    ValueError
        ``n`` that is not an int >= 0.

    Examples
    --------
    >>> import fastloss as fl
    >>> fl.set_num_threads(2)
    >>> fl.get_num_threads()
    2
    >>> fl.set_num_threads(0)          # back to OpenMP's default
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 0 <= int(n) <= MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be an int >= 0 (at most {MAX_THREADS}), got {n!r}")
    _runtime.set_num_threads(int(n))


def openmp_enabled() -> bool:
    """Whether the kernels were built with OpenMP; without it every loss runs on one thread.

    Returns
    -------
    bool
    """
    return _runtime.openmp_enabled()


# The kernels' thread count is a C int; a larger request is an error naming the argument, not an OverflowError
# from inside a kernel.
MAX_THREADS = 2**31 - 1

_fork_state = {"parallel_used": False, "serial_child": False}


def resolve_num_threads(num_threads) -> int:
    if type(num_threads) is int and 1 <= num_threads <= MAX_THREADS:      # (an explicit count: the fast path)
        n = num_threads
    elif num_threads is None:
        n = _runtime.get_num_threads()     # (get_num_threads, inlined: every default call)
    elif (isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral)
          or not 1 <= int(num_threads) <= MAX_THREADS):
        raise ValueError(f"num_threads must be None or an int >= 1 (at most {MAX_THREADS}), got {num_threads!r}")
    else:
        n = int(num_threads)               # (a NumPy integer)
    if _fork_state["serial_child"]:
        return 1
    if n > 1:
        _fork_state["parallel_used"] = True
    return n


def _after_fork_in_child():
    """A forked child of a process that ran multi-threaded work goes serial (see the module doc)."""
    if _fork_state["parallel_used"] or "torch" in sys.modules:
        _fork_state["serial_child"] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _register_threadpoolctl():
    """Make ``threadpoolctl.threadpool_limits`` see and limit fastloss (no-op without threadpoolctl)."""
    try:
        import threadpoolctl
    except ImportError:
        return
    if not hasattr(threadpoolctl, "register") or not hasattr(threadpoolctl, "LibController"):
        return

    unset_as = weakref.WeakKeyDictionary()

    class FastlossController(threadpoolctl.LibController):
        user_api = "fastloss"
        internal_api = "fastloss"
        filename_prefixes = ("_runtime",)
        check_symbols = ("fastloss_get_num_threads", "fastloss_set_num_threads")

        # threadpoolctl saves ``get_num_threads()`` before a limit and restores it with
        # ``set_num_threads(saved)``; it calls this for every controller, even one it did not limit.
        # When fastloss's setting was unset (following OpenMP's default), restoring the number it
        # reported must unset it again, not pin it (a later ``threadpool_limits(user_api="openmp")``
        # would no longer reach fastloss).  ``unset_as[self]`` is the count this controller reported
        # while unset; only a later unset reading replaces it, so nested limits on one controller
        # restore right.  (Kept outside the instance: threadpoolctl shows every attribute in info().)
        def get_num_threads(self):
            n = self.dynlib.fastloss_get_num_threads()
            if _runtime.requested_num_threads() == 0:
                unset_as[self] = n
            return n

        def set_num_threads(self, num_threads):
            if num_threads == unset_as.get(self):
                num_threads = 0
            self.dynlib.fastloss_set_num_threads(num_threads)

        def get_version(self):
            from . import __version__
            return __version__

        def set_additional_attributes(self):
            pass

    threadpoolctl.register(FastlossController)


_register_threadpoolctl()
