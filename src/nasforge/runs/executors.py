"""Executors: where the trials of a multi-trial search run. The strategy does not care which.

``executor.run(specs, fn, journal)`` evaluates each spec with the trial function ``fn`` (a ``"module:function"``
path, signature ``fn(spec: dict, threads: int) -> dict`` with at least a numeric ``"score"``) and returns the
results in the order of ``specs``. The journal makes runs resumable and cheap to repeat:

- a trial already ``done`` is not run again: its stored result is returned;
- a trial already ``failed`` is final too (its failure is returned) so a resumed search sees exactly what the
  interrupted one saw; ``TrialJournal.reset_failed()`` makes them run again;
- a trial left ``running`` or ``pending`` (the driver died) is run;
- a trial that raises is retried up to ``max_retries`` times, then recorded as failed with the result
  ``{"score": None, "error": "..."}`` and the search goes on;
- a trial whose training diverges (``TrainingDiverged``: the loss became NaN/inf) is recorded as failed at
  once with its error: its seed is fixed, so a retry would diverge the same way;
- a trial raising any other ``UserError`` is a configuration error: not retried, re-raised at once;
- with ``stop`` (a wall-clock deadline, ``--seconds``): once ``stop()`` is true no further trial starts, and
  those never started stay ``pending`` in the journal and have no result (``None`` in their place). A trial
  already running on a Ray worker finishes and is recorded. A trial running in this process (``local``) may
  ask :func:`past_deadline` between its epochs and raise :class:`TrialCut`: it is then left ``pending``
  with no result, as if it had not started (the scratch estimator does this), so it is never scored on a
  shorter training than its spec says.

Two executors: ``local`` (in the driver process, one trial at a time, all cores) and ``ray`` (a Ray task per
trial, ``workers`` at a time, each with its share of the cores). Ray is imported only when a Ray executor starts.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import os
import socket
import sys
import traceback
from abc import ABC, abstractmethod
from collections import deque
from contextvars import ContextVar
from numbers import Real
from typing import Any, Callable

import torch

from ..errors import ConfigError, TrainingDiverged, UserError
from ..registry import EXECUTORS
from .journal import Trial, TrialJournal

_DEADLINE: ContextVar[Callable[[], bool] | None] = ContextVar("nasforge_trial_deadline", default=None)


class TrialCut(Exception):
    """Raised by a trial function that stops because the search's deadline passed (see `past_deadline`):
    the executor leaves the trial pending, without a result."""


def past_deadline() -> bool:
    """For trial functions: True once the deadline of the search running this trial (in this process, on the
    local executor) has passed; always False elsewhere (a Ray worker, a trial run by hand)."""
    stop = _DEADLINE.get()
    return stop is not None and bool(stop())


#: progress(trial, finished, total): called each time a trial reaches `done` or `failed` in this run;
#: `finished` counts results available so far, including those already in the journal.
Progress = Callable[[Trial, int, int], Any]


def available_cores() -> int:
    """Cores this process may use (respects CPU affinity, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_trial_fn(path: str) -> Callable[[dict[str, Any], int], dict[str, Any]]:
    """Import a trial function from ``"package.module:function"``."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"trial function '{path}' must be written 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"cannot import trial function '{path}': {e}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"trial function '{path}': module '{module_name}' has no function '{attr}'")
    return fn


def check_ray_address(address: str, timeout: float = 3.0) -> None:
    """Fail fast, with one line, when a Ray cluster address (``host:port`` or ``ray://host:port``) does not
    accept connections: `ray.init` would otherwise retry for minutes. ``auto``/``local`` are left to Ray.

    Raises:
        UserError: malformed address, or nothing listening there within `timeout` seconds.
    """
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"Ray address '{address}' must be host:port (or ray://host:port, auto)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise UserError(f"cannot reach the Ray cluster at '{address}' ({reason}); start it with "
                        "`ray start --head` or drop --ray-address to run a local Ray instance") from None


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _failure_result(error: str | None) -> dict[str, Any]:
    # the journal keeps the whole traceback; the result carries its first line, the summary
    summary = (error or "unknown error").splitlines()[0]
    return {"score": None, "error": summary}


def _summary(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class _Bookkeeping:
    """Journal writes, retry policy and progress for one `Executor.run` call, shared by all executors."""

    def __init__(self, fn: str, journal: TrialJournal, max_retries: int, progress: Progress | None,
                 results: dict[str, dict[str, Any]], total: int, stop: Callable[[], bool] | None = None) -> None:
        self.fn = fn
        self.stop = stop
        self.journal = journal
        self.max_retries = max_retries
        self.progress = progress
        self.results = results  # key -> result, filled as trials finish
        self.total = total
        self.failures: dict[str, int] = {}  # failed attempts per key, in this run

    def stopping(self) -> bool:
        """True once the deadline has passed: start no further trial."""
        return self.stop is not None and bool(self.stop())

    def started(self, key: str, worker: str | None = None) -> None:
        self.journal.mark_running(key, worker)

    def succeeded(self, key: str, result: Any, worker: str | None = None) -> None:
        if not (isinstance(result, dict) and "score" in result and _is_number_or_none(result["score"])):
            # a wrong return type is a bug in the trial function, not bad luck: retrying cannot help
            self.journal.mark_pending(key, error=f"invalid result {result!r:.200}")
            raise ConfigError(f"trial function '{self.fn}' returned {result!r:.200}; "
                              "it must return a dict with a numeric 'score'")
        try:
            self.journal.mark_done(key, result, worker)
        except TypeError as e:  # not JSON-able
            self.journal.mark_pending(key, error=f"result is not JSON: {e}")
            raise ConfigError(f"trial function '{self.fn}' returned a result that is not JSON ({e})") from None
        self._finished(key)

    def crashed(self, key: str, summary: str, detail: str, retry: bool = True) -> bool:
        """Record a failed attempt. Returns True if the trial should be tried again (never when `retry` is
        False: a deterministic failure such as a diverged training run)."""
        error = f"{summary}\n\n{detail}".strip()
        self.failures[key] = self.failures.get(key, 0) + 1
        if retry and self.failures[key] <= self.max_retries:
            self.journal.mark_pending(key, error=error)
            return True
        self.journal.mark_failed(key, error)
        self._finished(key)
        return False

    def abandon(self, keys: list[str], error: str | None = None) -> None:
        """The run stops (configuration error, interrupt): unfinished trials go back to pending."""
        for key in keys:
            self.journal.mark_pending(key, error=error)

    def _finished(self, key: str) -> None:
        trial = self.journal.get(key)
        assert trial is not None
        self.results[key] = trial.result if trial.status == "done" else _failure_result(trial.error)
        if self.progress is not None:
            self.progress(trial, len(self.results), self.total)


def _is_number_or_none(x: Any) -> bool:
    # None is allowed: a trial function may report "no score" itself (e.g. the architecture does not fit)
    return x is None or (isinstance(x, Real) and not isinstance(x, bool))


class Executor(ABC):
    """Runs trials and records them in a journal. Subclasses implement `_execute`."""

    name: str = ""

    def run(self, specs: list[dict[str, Any]], fn: str, journal: TrialJournal, *, max_retries: int = 2,
            progress: Progress | None = None, stop: Callable[[], bool] | None = None) -> list[dict[str, Any] | None]:
        """Evaluate `specs` with trial function `fn`; results come back in the order of `specs`.

        `stop`: checked before each trial starts (a deadline); when it is true the remaining trials are not
        started, stay pending in the journal and come back as None (see the module docstring)."""
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        resolve_trial_fn(fn)  # a typo fails here, before anything is started
        keys = [journal.add(spec).key for spec in specs]
        results: dict[str, dict[str, Any]] = {}
        todo: list[Trial] = []
        for key in dict.fromkeys(keys):  # a spec listed twice runs once
            trial = journal.get(key)
            assert trial is not None
            if trial.status == "done":
                results[key] = trial.result
            elif trial.status == "failed":
                results[key] = _failure_result(trial.error)
            else:  # pending, or running when a previous driver died: not finished
                todo.append(trial)
        if todo:
            book = _Bookkeeping(fn, journal, max_retries, progress, results, total=len(results) + len(todo),
                                stop=stop)
            self._execute(todo, fn, book)
        return [results.get(key) for key in keys]

    @abstractmethod
    def _execute(self, trials: list[Trial], fn: str, book: _Bookkeeping) -> None:
        """Run each trial (retrying as `book.crashed` says) until every one is done or failed."""

    #: trials this executor runs at the same time (an asynchronous scheduler keeps this many in flight)
    @property
    def slots(self) -> int:
        return 1

    def stream(self, fn: str, journal: TrialJournal, *, max_retries: int = 2, progress: Progress | None = None,
               stop: Callable[[], bool] | None = None) -> "TrialStream":
        """Asynchronous trials (ASHA): `submit` specs one at a time, `wait` for results as they finish.
        This default runs a trial when it is waited for, in this process, through `run` (same journal,
        retry and deadline rules), so the caller decides the order in which trials finish."""
        return TrialStream(self, fn, journal, max_retries=max_retries, progress=progress, stop=stop)

    def shutdown(self) -> None:
        """Release workers (a later `run` starts them again)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class TrialStream:
    """Trials submitted one by one and collected as they finish; the journal rules of `Executor.run` hold
    (a trial done or failed in the journal is not run again). This base runs each trial when `wait` asks for
    it, so `wait(key)` fixes the completion order; `RayExecutor.stream` runs them in parallel instead."""

    def __init__(self, executor: Executor, fn: str, journal: TrialJournal, *, max_retries: int = 2,
                 progress: Progress | None = None, stop: Callable[[], bool] | None = None) -> None:
        resolve_trial_fn(fn)  # a typo fails before anything starts
        self.executor, self.fn, self.journal = executor, fn, journal
        self.max_retries, self.progress, self.stop = max_retries, progress, stop
        self.specs: dict[str, dict[str, Any]] = {}  # key -> spec, submitted and not yet returned by `wait`

    def submit(self, spec: dict[str, Any]) -> str:
        """Queue a trial; returns its journal key."""
        key = self.journal.add(spec).key
        self.specs[key] = spec
        return key

    @property
    def in_flight(self) -> int:
        return len(self.specs)

    def wait(self, key: str | None = None) -> tuple[str, dict[str, Any] | None]:
        """The result of trial `key` (default: the oldest submitted): ``(key, result)``; result None when the
        deadline passed before the trial started (it stays pending)."""
        if not self.specs:
            raise ValueError("wait() with no trial submitted")
        key = next(iter(self.specs)) if key is None else key
        spec = self.specs.pop(key)
        [result] = self.executor.run([spec], self.fn, self.journal, max_retries=self.max_retries,
                                     progress=self.progress, stop=self.stop)
        return key, result

    def close(self) -> None:
        """Forget unfinished trials (they stay pending or running in the journal, run again on resume)."""
        self.specs.clear()


@EXECUTORS.register("local", help="run trials one after another in this process, using all cores")
class LocalExecutor(Executor):
    name = "local"

    def __init__(self, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        self.threads = threads or available_cores()

    def _execute(self, trials: list[Trial], fn: str, book: _Bookkeeping) -> None:
        trial_fn = resolve_trial_fn(fn)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for n, trial in enumerate(trials):
                retry = True
                while retry:
                    if book.stopping():  # the deadline passed: this and the later trials stay pending
                        book.abandon([t.key for t in trials[n:]])
                        return
                    book.started(trial.key, _worker_name())
                    token = _DEADLINE.set(book.stop)
                    try:
                        result = trial_fn(trial.spec, self.threads)
                    except TrialCut:  # the deadline passed inside the trial: it and the later ones stay pending
                        book.abandon([trial.key], error="cut at the search's deadline (--seconds)")
                        book.abandon([t.key for t in trials[n + 1:]])
                        return
                    except TrainingDiverged as e:  # deterministic: recorded as failed, the search goes on
                        retry = book.crashed(trial.key, _summary(e), traceback.format_exc(), retry=False)
                    except UserError as e:
                        book.abandon([trial.key], error=_summary(e))
                        raise
                    except Exception as e:
                        retry = book.crashed(trial.key, _summary(e), traceback.format_exc())
                    except BaseException:  # KeyboardInterrupt, SystemExit: stop, keep the trial for a resume
                        book.abandon([trial.key])
                        raise
                    else:
                        book.succeeded(trial.key, result, _worker_name())
                        retry = False
                    finally:
                        _DEADLINE.reset(token)
        finally:
            torch.set_num_threads(previous)


def _run_on_worker(fn: str, spec: dict[str, Any], threads: int) -> tuple[dict[str, Any], str]:
    """Body of the Ray task: runs in a worker process with `threads` torch threads (a fresh interpreter: the
    trial function's module imports what it needs, e.g. the spaces it registers)."""
    torch.set_num_threads(threads)
    return resolve_trial_fn(fn)(spec, threads), _worker_name()


@EXECUTORS.register("ray", help="run trials in parallel on Ray workers (a local instance or a cluster)")
class RayExecutor(Executor):
    """One Ray task per trial, at most `workers` in flight, each with `threads_per_worker` torch threads
    (default: cores // workers, so parallel trials do not fight over the cores) and `gpus_per_trial` GPUs
    (fractional allowed, e.g. 0.5: two trials per GPU; 0: CPU trials).

    Without `address` a local Ray instance with `workers` CPUs is started on first use and stopped by
    `shutdown()`. Its workers see the driver's `sys.path`, so any trial function importable in the driver is
    importable in the workers. With `address` it connects to that cluster, whose nodes must be able to import
    the trial function themselves. A Ray instance that was already initialised is used as it is, and left up.
    """

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, threads_per_worker: int | None = None,
                 gpus_per_trial: float = 0.0) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        if not isinstance(gpus_per_trial, Real) or isinstance(gpus_per_trial, bool) or gpus_per_trial < 0:
            raise ConfigError(f"gpus_per_trial must be a number >= 0 (fractions share a GPU), got {gpus_per_trial!r}")
        if 1 < gpus_per_trial != int(gpus_per_trial):
            raise ConfigError(f"gpus_per_trial above 1 must be a whole number, got {gpus_per_trial}")
        self.gpus_per_trial = float(gpus_per_trial)
        if threads_per_worker is not None and threads_per_worker < 1:
            raise ConfigError(f"threads_per_worker must be >= 1, got {threads_per_worker}")
        self.workers = workers
        self.address = address
        self.threads_per_worker = threads_per_worker or max(1, available_cores() // workers)
        self._ray: Any = None
        self._task: Any = None
        self._owns_ray = False

    def _start(self) -> Any:
        if self._ray is not None and self._ray.is_initialized():
            return self._ray
        try:
            import ray
        except ImportError:
            raise UserError("ray is not installed; pip install 'nasforge[ray]'") from None
        if not ray.is_initialized():
            quiet = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
            try:
                if self.address:
                    check_ray_address(self.address)
                    ray.init(address=self.address, **quiet)
                else:
                    # Ray workers start from a fresh interpreter: hand them the driver's import path
                    path = os.pathsep.join(dict.fromkeys(os.path.abspath(p) for p in sys.path))
                    ray.init(address="local", num_cpus=self.workers,
                             runtime_env={"env_vars": {"PYTHONPATH": path}}, **quiet)
            except ConnectionError as e:
                raise UserError(f"cannot connect to the Ray cluster at '{self.address}': {e}") from None
            self._owns_ray = True
        # max_retries=0: Ray would otherwise re-run a task whose worker died on its own; the journal counts
        # attempts, so retries are ours
        # num_gpus: Ray reserves that share of a GPU per trial and sets CUDA_VISIBLE_DEVICES, so the trial's
        # device "cuda" is the GPU Ray chose (fractions put several trials on one GPU)
        if self.gpus_per_trial and ray.cluster_resources().get("GPU", 0) < self.gpus_per_trial:
            raise UserError(f"gpus_per_trial {self.gpus_per_trial:g}: the Ray cluster has "
                            f"{ray.cluster_resources().get('GPU', 0):g} GPU(s), so no trial could ever start")
        self._task = ray.remote(num_cpus=1, num_gpus=self.gpus_per_trial, max_retries=0)(_run_on_worker)
        self._ray = ray
        return ray

    def _execute(self, trials: list[Trial], fn: str, book: _Bookkeeping) -> None:
        ray = self._start()
        from ray.exceptions import RayError, RayTaskError

        queue = deque(trials)
        in_flight: dict[Any, Trial] = {}  # ObjectRef -> trial
        try:
            while in_flight or (queue and not book.stopping()):
                # keep exactly `workers` trials running, so the journal's `running` is the truth; after the
                # deadline no new trial starts and the running ones finish
                while queue and len(in_flight) < self.workers and not book.stopping():
                    trial = queue.popleft()
                    book.started(trial.key, "ray")
                    in_flight[self._task.remote(fn, trial.spec, self.threads_per_worker)] = trial
                if not in_flight:  # the deadline passed just now: nothing started, nothing to wait for
                    break
                [ref], _ = ray.wait(list(in_flight), num_returns=1)
                trial = in_flight.pop(ref)
                try:
                    result, worker = ray.get(ref)
                except RayTaskError as e:  # the trial function raised: e.cause is its exception
                    cause = e.cause if e.cause is not None else e
                    if isinstance(cause, TrainingDiverged):
                        retry = book.crashed(trial.key, _summary(cause), str(e), retry=False)
                    elif isinstance(cause, UserError):
                        book.abandon([trial.key], error=_summary(cause))
                        raise cause from None
                    else:
                        retry = book.crashed(trial.key, _summary(cause), str(e))
                except RayError as e:  # the worker process died (os._exit, segfault, out of memory), ...
                    retry = book.crashed(trial.key, _summary(e), str(e))
                else:
                    book.succeeded(trial.key, result, worker)
                    continue
                if retry:
                    queue.appendleft(trial)
            book.abandon([t.key for t in queue])  # never started (the deadline passed): pending for a resume
        except BaseException:
            for ref in in_flight:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # already finished, or Ray is going down: nothing left to stop
                    pass
            book.abandon([t.key for t in in_flight.values()])
            raise

    @property
    def slots(self) -> int:
        return self.workers

    def stream(self, fn: str, journal: TrialJournal, *, max_retries: int = 2, progress: Progress | None = None,
               stop: Callable[[], bool] | None = None) -> TrialStream:
        """Trials run on the Ray workers as soon as they are submitted (at most `workers` at once, the rest
        queued); `wait()` returns whichever finishes first, `wait(key)` that one (others keep running)."""
        return _RayStream(self, fn, journal, max_retries=max_retries, progress=progress, stop=stop)

    def shutdown(self) -> None:
        if self._ray is not None and self._owns_ray:
            self._ray.shutdown()
        self._ray = self._task = None
        self._owns_ray = False


class _RayStream(TrialStream):
    """`TrialStream` on Ray tasks; the journal, retry and error rules are those of `RayExecutor._execute`."""

    def __init__(self, executor: RayExecutor, fn: str, journal: TrialJournal, **kw: Any) -> None:
        super().__init__(executor, fn, journal, **kw)
        self.ray = executor._start()
        self.book = _Bookkeeping(fn, journal, self.max_retries, self.progress, {}, total=0, stop=self.stop)
        self.queue: deque[str] = deque()  # submitted, not started (all workers busy)
        self.running: dict[Any, str] = {}  # ObjectRef -> key
        self.ready: dict[str, dict[str, Any] | None] = {}  # finished (or known from the journal), not yet waited for

    def submit(self, spec: dict[str, Any]) -> str:
        key = self.journal.add(spec).key
        self.specs[key] = spec
        trial = self.journal.get(key)
        assert trial is not None
        if trial.status == "done":
            self.ready[key] = trial.result
        elif trial.status == "failed":
            self.ready[key] = _failure_result(trial.error)
        else:
            self.queue.append(key)
            self._fill()
        return key

    def _fill(self) -> None:
        ex: RayExecutor = self.executor  # type: ignore[assignment]
        while self.queue and len(self.running) < ex.workers and not self.book.stopping():
            key = self.queue.popleft()
            self.book.started(key, "ray")
            self.running[ex._task.remote(self.fn, self.specs[key], ex.threads_per_worker)] = key

    def _collect_one(self) -> None:
        from ray.exceptions import RayError, RayTaskError

        [ref], _ = self.ray.wait(list(self.running), num_returns=1)
        key = self.running.pop(ref)
        try:
            result, worker = self.ray.get(ref)
        except RayTaskError as e:
            cause = e.cause if e.cause is not None else e
            if isinstance(cause, UserError):
                self.book.abandon([key], error=_summary(cause))
                raise cause from None
            retry = self.book.crashed(key, _summary(cause), str(e), retry=not isinstance(cause, TrainingDiverged))
        except RayError as e:  # the worker process died
            retry = self.book.crashed(key, _summary(e), str(e))
        else:
            self.book.succeeded(key, result, worker)
            self.ready[key] = self.book.results[key]
            return
        if retry:
            self.queue.appendleft(key)
        else:
            self.ready[key] = self.book.results[key]

    def wait(self, key: str | None = None) -> tuple[str, dict[str, Any] | None]:
        if not self.specs:
            raise ValueError("wait() with no trial submitted")
        while True:
            found = key if key is not None else next((k for k in self.ready), None)
            if found is not None and found in self.ready:
                self.specs.pop(found)
                return found, self.ready.pop(found)
            self._fill()
            if not self.running:  # the deadline passed: what is queued never starts
                found = key if key is not None else self.queue[0]
                self.queue.remove(found)
                self.specs.pop(found)
                self.book.abandon([found])
                return found, None
            self._collect_one()

    def close(self) -> None:
        for ref in self.running:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished, or Ray is going down: nothing left to stop
                pass
        self.book.abandon([*self.running.values(), *self.queue])
        self.running.clear()
        self.queue.clear()
        super().close()


def make_executor(name: str, **options: Any) -> Executor:
    """Build a registered executor by name, e.g. ``make_executor("ray", workers=2)``."""
    cls = EXECUTORS.get(name)  # unknown name -> ConfigError listing the choices
    valid = [p for p in inspect.signature(cls).parameters]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for executor '{name}'; valid: {', '.join(valid) or 'none'}")
    return cls(**options)


__all__ = ["Executor", "TrialStream", "LocalExecutor", "RayExecutor", "make_executor", "resolve_trial_fn", "available_cores",
           "TrialCut", "past_deadline"]
