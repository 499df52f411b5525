"""Stopping in one line: Ctrl-C and SIGTERM, a full disk, a peer process that is gone.

Each ends a command with one line on stderr that says what was done, what was
lost (nothing half-written is kept) and how to go on:

  SIGINT / SIGTERM  `Interrupted` is raised in the main thread; `cli.run_main` prints
                    "interrupted (SIGINT) after epoch 3 of chunk 0 ...; rerun ... to resume"
                    and exits 130 / 143 (128 + the signal, as a shell reports it).
                    Sections that must not be cut in half (saving and pruning a
                    checkpoint, renaming an output into place) run under `deferred()`:
                    a signal that arrives there is acted on when the section ends.
  disk full         `disk_full_as_one_line(folder, what)` turns ENOSPC (an OSError, or
                    the RESOURCE_EXHAUSTED text tensorstore raises for orbax) into a
                    `DiskFullError` naming the folder, what was being written and the
                    free space; exit status 2, as for other errors a user can act on.
  a lost peer       `watch_peers(timeout)`: in a multi-process run every process writes a
                    heartbeat counter into jax.distributed's key-value store each second
                    and reads the others'. A peer whose counter stops for `timeout`
                    seconds (killed, its host gone) or whose coordinator cannot be
                    reached makes this process print one line naming it and exit 75
                    (EX_TEMPFAIL) at once, rather than wait in a collective until
                    JAX's own heartbeat check aborts it with a core dump.
                    Not covered: when process 0 dies, its coordination service dies
                    with it and JAX's client in every other process aborts at once
                    (bounded, but with JAX's own messages): jax 0.10.2 offers no way to
                    replace that reaction (a Python `missed_heartbeat_callback`
                    cannot receive the status and ends in std::bad_cast).

The messages name the resume command (`resume_hint`) and how far the run got
(`note_progress`), which the training loop and the scripts keep up to date.

A signal is never lost. Python swallows an exception raised inside a gc callback
(JAX's `_xla_gc_callback`), a `__del__` or a weakref callback: it prints "Exception
ignored in ..." and goes on, so a SIGTERM whose `Interrupted` was raised there used to
end in exit 0. Hence four layers, each enough on its own for what the one before misses:
  1. the handler records the signal (`_received`) before it raises;
  2. `sys.unraisablehook` recognises a swallowed `Interrupted`, prints nothing and
     delivers the signal again a moment later, in ordinary code (`_deliver_again`);
  3. safe points (`note_progress`, i.e. every epoch and scoring step) and the end of a
     command's `main` (`raise_if_received`) raise a recorded signal that never got out;
  4. once the command has finished (`finish`), a late signal prints the line and exits
     at once; after the last exit handler, the signals' default action ends the process.
The one line is printed by `exit_interrupted`, which leaves with `os._exit`: no
interpreter finalisation, which raced XLA's compiler threads after a SIGTERM during a
compile ("Fatal Python error: Segmentation fault"). Writers clean their temporary files
as the exception passes through them (`atomic.atomic_path`, `checkpoints.save`), before.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import shutil
import signal
import sys
import threading
import time
from typing import NoReturn

from ecg_jax.errors import EcgJaxError

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
PEER_LOST_EXIT = 75                     # EX_TEMPFAIL: nothing wrong with the command; rerun it
DEFAULT_PEER_TIMEOUT_S = 30
# JAX's own heartbeat check aborts the process (SIGABRT, a page of C++ log); it must fire after ours.
JAX_HEARTBEAT_EXTRA_S = 60
_HEARTBEAT_PERIOD_S = 1.0
# A peer that reported an error exits on its own; give this process that long to meet the
# same error (every process usually does) before it stops on the peer's account.
_FAILED_PEER_GRACE_S = 5.0

_progress: str | None = None
_resume: str | None = None
_hint_depth = 0
_deferring = 0
_pending: int | None = None
# The last SIGINT/SIGTERM received, kept whatever became of its `Interrupted`.
_received: int | None = None
# "run": the handler raises; "exiting": the one line is being printed, more signals change nothing;
# "finished": the command's work is over, a signal prints the line and exits at once.
_mode = "run"
_exit_status: int | None = None   # the finished command's exit status (`finish`)
_REDELIVERY_DELAY_S = 0.05   # long enough for a gc pass (or a __del__) to end first


class Interrupted(BaseException):
    """SIGINT or SIGTERM (a BaseException, like KeyboardInterrupt: `except Exception` lets it through)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return SIGNAL_EXIT.get(self.signum, 128 + self.signum)


class DiskFullError(EcgJaxError):
    """No space left on the device while writing; what was finished before is kept."""


# ------------------------------------------------------------------ where the run is

def note_progress(text: str | None) -> None:
    """How far the command got, for the one-line messages: a phrase like "after epoch 3 of chunk 0".

    Also a safe point: a signal whose `Interrupted` was swallowed is raised here (`raise_if_received`)."""
    global _progress
    raise_if_received()
    _progress = text


@contextlib.contextmanager
def resume_hint(text: str):
    """The command that resumes this work, for the messages; an outer hint (reproduce.py around
    train_and_evaluate) wins. Kept when the block ends in an exception, for the top level to report,
    until the next outermost `resume_hint` replaces it."""
    global _resume, _hint_depth
    if _hint_depth == 0:
        _resume = text
    _hint_depth += 1
    try:
        yield
    except BaseException:
        _hint_depth -= 1
        raise
    _hint_depth -= 1
    if _hint_depth == 0:
        _resume = None


def _hint(prefix: str = "; ") -> str:
    return f"{prefix}{_resume}" if _resume else ""


# ------------------------------------------------------------------ signals

def _handler(signum, frame) -> None:
    global _pending, _received
    _received = signum            # first, so that a swallowed raise below is still known
    if _mode == "exiting":
        return
    if _mode == "finished":
        exit_interrupted(Interrupted(signum))
    if _deferring:
        _pending = signum
        return
    raise Interrupted(signum)


def handlers_installed() -> bool:
    return signal.getsignal(signal.SIGTERM) is _handler


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise `Interrupted` (main thread only; elsewhere nothing changes).

    The entry points call this first, before the heavy imports (`ecg_jax.commands.main`); calling it
    again keeps what was recorded meanwhile."""
    global _received, _mode, _pending, _exit_status
    if threading.current_thread() is not threading.main_thread():
        return
    if not handlers_installed():   # a fresh start (in-process tests install and restore them)
        _received, _pending, _mode, _exit_status = None, None, "run", None
        if not isinstance(sys.unraisablehook, _UnraisableHook):
            sys.unraisablehook = _UnraisableHook(sys.unraisablehook)
        if not isinstance(sys.excepthook, _ExceptHook):
            sys.excepthook = _ExceptHook(sys.excepthook)
        _register_default_action_at_exit()
    for s in SIGNAL_EXIT:
        signal.signal(s, _handler)


class _UnraisableHook:
    """`sys.unraisablehook` that takes a swallowed `Interrupted` (or KeyboardInterrupt) out of a gc callback,
    `__del__` or weakref callback: nothing printed, the signal delivered again in ordinary code."""

    def __init__(self, previous):
        self.previous = previous

    def __call__(self, unraisable) -> None:
        exc = unraisable.exc_value
        if isinstance(exc, Interrupted) or (isinstance(exc, KeyboardInterrupt) and handlers_installed()):
            _deliver_again(exc.signum if isinstance(exc, Interrupted) else signal.SIGINT)
            return
        self.previous(unraisable)


class _ExceptHook:
    """`sys.excepthook` that prints no traceback for an `Interrupted`: C code prints an error it then
    replaces (numpy's `import_array` in an extension imported during a signal: PyErr_Print, then
    "ImportError: numpy._core.multiarray failed to import"). The top level reports it in one line
    (`caused_by_signal`). Not delivered again (as `_UnraisableHook` does): a raise into an extension's
    unfinished initialisation (jaxlib's) crashed the process (SIGSEGV); if that code goes on regardless,
    the recorded signal is raised at the next safe point or at the end of main (`raise_if_received`)."""

    def __init__(self, previous):
        self.previous = previous

    def __call__(self, exc_type, exc, tb) -> None:
        global _received
        if isinstance(exc, Interrupted) or (isinstance(exc, KeyboardInterrupt) and handlers_installed()):
            _received = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            return
        self.previous(exc_type, exc, tb)


def _deliver_again(signum: int) -> None:
    """Run the handler for `signum` again in the main thread, a moment from now (a thread: from inside the
    hook it would run in the hook, where a raise is swallowed once more)."""
    global _received
    _received = signum

    def again() -> None:
        if _mode != "exiting" and handlers_installed():
            import _thread
            _thread.interrupt_main(signum)   # the handler runs at the main thread's next bytecode

    timer = threading.Timer(_REDELIVERY_DELAY_S, again)
    timer.daemon = True
    timer.start()


_default_action_registered = False


def _register_default_action_at_exit() -> None:
    """Registered before any library's exit handler, so it runs last (atexit is LIFO). After it, the
    interpreter's finalisation may run no Python code at all (a signal there would be noticed by
    nobody: exit 0; measured: a tenth of a second for JAX's modules), so a finished command ends here
    with its exit status (`finish`), flushed, by `os._exit`; without a known status, the signals'
    default action replaces the handler (the process ends, 128 + n in a shell)."""
    global _default_action_registered
    if _default_action_registered:
        return
    _default_action_registered = True

    def last_exit_handler() -> None:
        if _mode != "finished" or threading.current_thread() is not threading.main_thread():
            return
        if _exit_status is not None:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # noqa: BLE001 -- a closed pipe
                    pass
            os._exit(_exit_status)
        for s in SIGNAL_EXIT:
            signal.signal(s, signal.SIG_DFL)

    atexit.register(last_exit_handler)


def hold_during_imports() -> None:
    """A signal while a module is imported is acted on when the (outermost) import ends (`deferred`).

    Raised inside an import, an `Interrupted` left half-initialised modules behind: numpy's, which
    jaxlib's initialisation then used anyway (SIGSEGV, "Fatal Python error"), or an ImportError and a
    traceback printed by C code. The first seconds of every command are imports (JAX, matplotlib), so
    a Ctrl-C there waits for them (a second or two) and then ends in the usual line. Done by wrapping
    importlib's `_find_and_load`, which every import of a module not yet loaded goes through (the
    `import` statement and importlib.import_module alike); modules already loaded are not affected."""
    import importlib._bootstrap as bootstrap  # the frozen module the interpreter's imports call into

    load = getattr(bootstrap, "_find_and_load", None)
    if load is None or getattr(load, "_ecg_jax_held", False):
        return

    def find_and_load(name, import_):
        with deferred():
            return load(name, import_)

    find_and_load._ecg_jax_held = True
    bootstrap._find_and_load = find_and_load


def raise_if_received() -> None:
    """A safe point: raise the recorded signal whose `Interrupted` was swallowed on its way out
    (ordinary code runs, so it is not propagating). Inside a deferred section it waits for the end."""
    global _pending
    if _received is None or _mode != "run" or not handlers_installed():
        return
    if _deferring:
        _pending = _received
        return
    raise Interrupted(_received)


def caused_by_signal(e: BaseException) -> Interrupted | None:
    """The signal behind `e`, if any: `e` itself, or an error that reached the top after a SIGINT/SIGTERM
    was received (an Interrupted raised while an extension module initialises comes out as "ImportError:
    Encountered an error while initializing the extension"; a library may wrap it in its own error).
    The user asked the command to stop: that is what is reported, in the one line."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, Interrupted):
            return e
        if isinstance(e, KeyboardInterrupt):
            return Interrupted(signal.SIGINT)
        e = e.__cause__ or e.__context__
    if _received is not None and _mode == "run" and handlers_installed():
        return Interrupted(_received)
    return None


def finish(status=None) -> None:
    """The command's work is over (its `main` returned or it is exiting with an error): a signal from
    now on prints the one line and exits at once, rather than raise into absl's or Python's exit.
    `status`: the code of the SystemExit the command ends with (None, an int or a message, as
    sys.exit takes it), with which the last exit handler ends the process."""
    global _mode, _exit_status
    if _mode == "run":
        _mode = "finished"
    if isinstance(status, SystemExit):
        code = status.code
        _exit_status = 0 if code is None else code if isinstance(code, int) else 1


def exit_interrupted(e: BaseException) -> NoReturn:
    """The one line for `e` (an Interrupted, or a KeyboardInterrupt that came before our handler), then
    exit 130/143 at once with `os._exit`. The callers' temporary files are gone by now: they are removed
    as the exception passes through their writers."""
    global _mode
    _mode = "exiting"
    e = e if isinstance(e, Interrupted) else Interrupted(signal.SIGINT)
    try:
        print(interrupted_message(e), file=sys.stderr, flush=True)
    except Exception:  # noqa: BLE001 -- stderr closed: the status still says it
        pass
    end_peer_watch("failed")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 -- a closed pipe
            pass
    os._exit(e.exit_status)


@contextlib.contextmanager
def deferred():
    """Run a section that must not be cut in half; a SIGINT/SIGTERM meanwhile is raised at its end
    (unless the section fails: its own error is the one reported)."""
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    except BaseException:
        _deferring -= 1
        raise
    _deferring -= 1
    if not _deferring and _pending is not None:
        signum, _pending = _pending, None
        raise Interrupted(signum)


def interrupted_message(e: Interrupted) -> str:
    name = signal.Signals(e.signum).name
    where = f" {_progress}" if _progress else ""
    return f"interrupted ({name}){where}; nothing half-written was kept" + _hint()


# ------------------------------------------------------------------ a full disk

def is_disk_full(e: BaseException) -> bool:
    """ENOSPC/EDQUOT as an OSError, or as the text tensorstore (orbax) and other libraries raise."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e)
    return ("No space left on device" in text or "Disk quota exceeded" in text
            or f"os_error_code='{errno.ENOSPC}'" in text)


def free_bytes(path: str) -> int | None:
    """Free space of the file system holding `path` (its nearest existing parent)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def size_text(n: int | None) -> str:
    if n is None:
        return "unknown"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def disk_full_error(folder: str, what: str) -> DiskFullError:
    return DiskFullError(f"no space left in {folder} while writing {what} ({size_text(free_bytes(folder))} free); "
                         "nothing half-written was kept" + _hint(", finished work is; free some space, then "))


@contextlib.contextmanager
def disk_full_as_one_line(folder: str, what: str):
    """Turn a full disk inside the block into a one-line `DiskFullError` naming `folder` and `what`."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as e:  # noqa: BLE001 -- only a full disk is translated; the rest propagates as it is
        if is_disk_full(e):
            raise disk_full_error(os.path.abspath(folder), what) from None
        raise


# ------------------------------------------------------------------ a lost peer process

class _PeerWatch:
    def __init__(self, client, me: int, n: int, timeout_s: float):
        self.client, self.me, self.n, self.timeout_s = client, me, n, timeout_s
        self.stop = threading.Event()

    def key(self, i: int) -> str:
        return f"ecg_jax/peer_alive/{i}"

    def run(self) -> None:
        beat = 0
        now = time.monotonic()
        seen = {i: (None, now) for i in range(self.n) if i != self.me}   # last value, when it last changed
        contact = now                                                   # last successful call to the store
        while not self.stop.wait(_HEARTBEAT_PERIOD_S):
            now = time.monotonic()
            try:
                beat += 1
                self.client.key_value_set(self.key(self.me), str(beat), allow_overwrite=True)
                contact = now
            except Exception:  # noqa: BLE001 -- the coordinator (process 0) cannot be reached
                if self.stop.is_set():
                    return
                if now - contact > self.timeout_s:
                    self.lost(0, f"its coordination service has not answered for {self.timeout_s:g} s")
                continue
            for i, (value, since) in seen.items():
                try:
                    current = self.client.key_value_try_get(self.key(i))
                except Exception:  # noqa: BLE001 -- no heartbeat written yet
                    current = None
                if current == "failed" and now - since > _FAILED_PEER_GRACE_S:
                    self.lost(i, "it stopped early (its own output says why)")
                if current != value:
                    seen[i] = (current, now)
                elif current != "done" and now - since > self.timeout_s:
                    self.lost(i, f"no sign of life for {self.timeout_s:g} s")

    def lost(self, i: int, why: str) -> None:
        if not self.stop.is_set():
            _report_lost(i, self.n, self.me, why)

    def finish(self, outcome: str) -> None:
        """Tell the peers this process ends on purpose ("done" or "failed"), then stop watching."""
        if self.stop.is_set():
            return
        self.stop.set()
        try:
            self.client.key_value_set(self.key(self.me), outcome, allow_overwrite=True)
        except Exception:  # noqa: BLE001 -- the service may be gone already
            pass


_watch: _PeerWatch | None = None


def _report_lost(i: int | None, n: int, me: int, why: str) -> None:
    where = f" {_progress}" if _progress else ""
    hint = "; rerun the same command on every process to resume" + (f" ({_resume})" if _resume else "")
    who = f"process {i} of {n}" if i is not None else f"a process of {n}"
    print(f"error: {who} is gone ({why}); process {me} stopped{where}{hint}", file=sys.stderr, flush=True)
    os._exit(PEER_LOST_EXIT)


def watch_peers(timeout_s: float) -> None:
    """Start the heartbeat thread of a multi-process run (after jax.distributed.initialize)."""
    global _watch
    import jax
    from jax._src import distributed

    client = distributed.global_state.client
    if client is None or jax.process_count() < 2 or _watch is not None:
        return
    _watch = _PeerWatch(client, jax.process_index(), jax.process_count(), float(timeout_s))
    threading.Thread(target=_watch.run, name="ecg-jax-peer-watch", daemon=True).start()
    atexit.register(end_peer_watch, "done")


def settle_with_peers(error: BaseException) -> None:
    """Called with an unexpected error of a multi-process run: a collective often fails (gloo: "connection
    closed by peer") a moment before the heartbeats show a peer is gone. Give the watch up to its timeout
    to name the lost peer (it then exits with its one line); otherwise the error is this process's own."""
    if _watch is None or _watch.stop.is_set():
        return
    if not any(word in str(error).lower() for word in ("gloo", "connection", "peer", "socket", "unavailable")):
        return
    deadline = time.monotonic() + _watch.timeout_s + 2 * _HEARTBEAT_PERIOD_S
    while time.monotonic() < deadline and not _watch.stop.is_set():
        time.sleep(0.2)


def end_peer_watch(outcome: str) -> None:
    """`outcome` "done" (finished) or "failed" (stopping with an error): peers do not wait for us."""
    if _watch is not None:
        _watch.finish(outcome)
