"""Independent jobs side by side (all the package's parallel work goes through :func:`clpips.train.fit_many`).

:func:`run` computes ``fn(*task)`` of every task in this process, in ``workers`` local processes
(:class:`LocalPool`), or on any :class:`concurrent.futures.Executor` you pass, e.g. a Dask cluster's
(``Client(...).get_executor()``, ``clpips crossval --dask ADDRESS``). Each task sets its own torch threads,
so its results are the same, bit for bit, wherever it runs. Workers start by importing the main script
(``spawn``): a script that runs jobs in them keeps its top level under ``if __name__ == "__main__":``.
"""
from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import contextlib
import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from typing import Any, Callable, Optional, Sequence

#: the Linux prctl option that has the kernel send a signal to a process when its parent ends
_PR_SET_PDEATHSIG = 1


class LocalPool(concurrent.futures.ProcessPoolExecutor):
    """``workers`` fresh processes, each with ``threads`` torch threads (None: the cores shared among them).

    ``spawn``, since a fork of a process whose torch threads run can hang. A worker ignores Ctrl-C (the
    parent ends the workers, :meth:`stop`) and ends with its parent however it ends: on Linux by the kernel
    (``PR_SET_PDEATHSIG``), everywhere when the pipe its parent holds open reaches its end: no orphans.
    """

    def __init__(self, workers: int, threads: Optional[int] = None):
        context = multiprocessing.get_context("spawn")
        alive, self._alive = context.Pipe(duplex=False)      # the workers read, this process holds the end open
        threads = threads if threads is not None else max(1, (os.cpu_count() or 1) // max(1, workers))
        super().__init__(max_workers=workers, mp_context=context, initializer=_start_worker,
                         initargs=(os.getpid(), int(threads), alive))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        """As ``ProcessPoolExecutor.submit``, the arguments pickled by value (:func:`_call`'s reason)."""
        return super().submit(_by_value, fn, pickle.dumps((args, kwargs), pickle.HIGHEST_PROTOCOL))

    def stop(self, running: Sequence[concurrent.futures.Future] = (), seconds: float = 1.0) -> None:
        """End the workers and their jobs at once, drop the jobs not started. Waits (at most ``seconds``) until
        ``running`` have failed, i.e. the pool has released what it holds (else a parent ending right after
        leaves multiprocessing's semaphores to its resource tracker, with a warning)."""
        self._alive.close()
        done, _ = concurrent.futures.wait(running, timeout=seconds)
        self.shutdown(wait=len(done) == len(running), cancel_futures=True)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait, cancel_futures=cancel_futures)
        if wait:
            self._alive.close()                  # the workers have ended: their pipe too


def run(fn: Callable[..., Any], tasks: Sequence[tuple], *, workers: int = 1,
        executor: Optional[concurrent.futures.Executor] = None, threads: Optional[int] = None) -> list[Any]:
    """``[fn(*task) for task in tasks]``, run on ``executor`` (left open: the caller's), else with ``workers > 1``
    on a :class:`LocalPool` of ``min(workers, len(tasks))`` processes, else here. Submitted in order (put the
    longest first); on an error or Ctrl-C the tasks not started are cancelled and local workers end at once.
    ``fn`` and the tasks must pickle (a module-level function)."""
    if executor is None and (workers <= 1 or len(tasks) <= 1):
        return [fn(*task) for task in tasks]
    pool = executor if executor is not None else LocalPool(min(workers, len(tasks)), threads)
    futures: list[concurrent.futures.Future] = []
    try:
        futures = [pool.submit(_call, fn, pickle.dumps(task, pickle.HIGHEST_PROTOCOL)) for task in tasks]
        results = [pickle.loads(future.result()) for future in futures]
    except BaseException as error:               # an error, or Ctrl-C: nothing more is computed for this call
        for future in futures:
            future.cancel()
        if executor is None:
            pool.stop(futures)
            if isinstance(error, concurrent.futures.process.BrokenProcessPool):
                raise RuntimeError(
                    "a worker process ended before its job did. A script that runs jobs in worker processes "
                    "needs its top level under `if __name__ == '__main__':` (each worker starts by importing "
                    "the script: Python's spawn start method); or pass workers=1") from error
        raise
    if executor is None:
        pool.shutdown(wait=True)
    return results


def _call(fn: Callable[..., Any], task: bytes) -> bytes:
    """``fn(*task)``, task and result as pickled bytes: a process pool's pickler (torch's) would move each
    tensor's memory into shared memory in place, leaving numpy arrays that view it reading freed memory (seen
    as NaN distances in chapter 04, from ``np.asarray`` of the starting weights); plain pickle copies."""
    return pickle.dumps(fn(*pickle.loads(task)), pickle.HIGHEST_PROTOCOL)


def _by_value(fn: Callable[..., Any], arguments: bytes) -> Any:
    """``fn(*args, **kwargs)`` of the pickled ``(args, kwargs)`` (:meth:`LocalPool.submit`)."""
    args, kwargs = pickle.loads(arguments)
    return fn(*args, **kwargs)


def _start_worker(parent: int, threads: int, alive) -> None:
    """A :class:`LocalPool` worker's first act: leave Ctrl-C to the parent, die with it, set torch's threads."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:                   # the parent ended before the line above took effect
        os._exit(1)
    threading.Thread(target=_exit_at_end, args=(alive,), daemon=True).start()
    # torch loads late, here: importing it takes seconds, in which a worker not yet tied to its parent
    # would outlive a parent killed meanwhile
    import torch
    torch.set_num_threads(threads)


def _exit_at_end(alive) -> None:
    """End this process, a running job included, once the parent closes the pipe ``alive`` (or ends)."""
    with contextlib.suppress(EOFError, OSError):
        alive.recv_bytes()
    os._exit(1)
