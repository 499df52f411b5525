"""The `ecg-jax` command: one subcommand per job, each an absl program in a module of this package.

  ecg-jax --help                  the subcommands, one line each
  ecg-jax train --help            a subcommand's flags
  python -m ecg_jax train ...     the same as `ecg-jax train ...`
  python scripts/train.py ...     the same again (scripts/*.py call `run_script`)

absl flags are process-global and a module defines its flags when it is
imported (ml_collections even reads the command line then), so the front door
imports only the chosen subcommand's module, after setting `sys.argv` to that
subcommand's command line.
"""

from __future__ import annotations

import importlib
import os
import sys

# Light (the standard library only): the signal handlers go in before anything heavy is imported.
from ecg_jax import interrupts

# name -> (module of this package, one line for `ecg-jax --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train every seed and dataset of a config in one compiled program, then evaluate"),
    "evaluate": ("evaluate", "score a training workdir's checkpoints (latest or --epoch N)"),
    "tables": ("tables", "merge results.jsonl files into the benchmark tables and figures"),
    "reproduce": ("reproduce", "the whole benchmark in one resumable run: baselines, networks, tables"),
    "prepare": ("prepare", "prepare a config's data: data card, input SNRs, optional .npz export"),
    "baselines": ("baselines", "score the classical baselines (FFT, DWT, EMD) on every dataset"),
    "denoise": ("denoise", "denoise an ECG recording (CSV, NPY, WFDB, EDF) with a trained network"),
    "export": ("export", "export a training run as a portable weights file plus its model card"),
    "summary": ("summary", "one row per network: parameters, FLOPs, output shape, forward time"),
    "download": ("download", "download the PhysioNet databases (MIT-BIH, NSTDB)"),
    "benchmark": ("benchmark", "training throughput per member-parallelism mode and loop"),
    "benchmark-data": ("benchmark_data", "time data preparation of the whole grid, cold and warm"),
    "benchmark-layouts": ("benchmark_layouts", "training speed per device layout (processes x devices)"),
    "benchmark-denoise": ("benchmark_denoise", "compare denoisers on held-out records"),
    "benchmark-memory": ("benchmark_memory", "compiled memory per member and XLA cost per member-step"),
    "benchmark-sweep": ("benchmark_sweep", "a hyperparameter sweep as one run against its points one by one"),
    "export-programs": ("export_programs", "lower every network's programs for GPU/TPU with jax.export"),
}
# Flags that ask for a subcommand's help; absl's own --helpfull still lists every flag.
HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "-helpshort", "-?")


def usage(prog: str = "ecg-jax") -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {prog} COMMAND [flags]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", f"`{prog} COMMAND --help` lists that command's flags. `ecg-jax` and `python -m ecg_jax`",
              "are the same command. A config is a built-in name (dancer:smoke, unet, final:ralenet,",
              "paper:smoke) or a file path (configs/dancer.py:smoke)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "ecg-jax") -> None:
    """The console entry point: `ecg-jax COMMAND [flags]`."""
    _interruptible(_main, argv, prog)


def _interruptible(function, *args) -> None:
    """Ctrl-C / SIGTERM from the first moment: the handlers are installed before the subcommand's
    imports (JAX, matplotlib: seconds), and a signal there, or a KeyboardInterrupt from before the
    handlers, ends in the one line and 130/143 like one during the work (no traceback)."""
    try:
        interrupts.install_signal_handlers()
        interrupts.hold_during_imports()
        function(*args)
    except SystemExit as e:
        interrupts.finish(e)   # absl's exit after main, or a usage error: a late signal is still one line
        raise
    except BaseException as e:
        signalled = interrupts.caused_by_signal(e)   # e.g. an import that wrapped it in an ImportError
        if signalled is None:
            raise
        interrupts.exit_interrupted(signalled)


def _main(argv: list[str] | None, prog: str) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in HELP_FLAGS:
        print(usage(prog), file=sys.stdout if args else sys.stderr)
        sys.exit(0 if args else 2)
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        print(f"error: unknown command {name!r}{hint} ({prog} --help lists them)", file=sys.stderr)
        sys.exit(2)
    run(name, rest, prog=f"{prog} {name}")


def run_script(name: str) -> None:
    """`python scripts/<x>.py ...`: subcommand `name` with this process's command line."""
    _interruptible(run, name, sys.argv[1:], sys.argv[0])


def run(name: str, args: list[str], prog: str) -> None:
    """Run subcommand `name` with the flags `args`; never returns (absl exits)."""
    module_name, text = COMMANDS[name]
    sys.argv = [prog, *args]
    module = importlib.import_module(f"{__name__}.{module_name}")
    if any(a in HELP_FLAGS for a in _before_double_dash(args)):
        print(command_help(module, prog, text))
        sys.exit(0)
    # Settings JAX reads once, when it starts: made here, before anything can start it.
    for key, value in getattr(module, "ENVIRONMENT_DEFAULTS", {}).items():
        os.environ.setdefault(key, value)

    # lazy: listing the subcommands or a subcommand's flags needs neither absl's app nor ecg_jax.cli
    from absl import app

    from ecg_jax.cli import run_main

    app.run(run_main(module.main, distributed=getattr(module, "DISTRIBUTED", False)))


def command_help(module, prog: str, text: str) -> str:
    """The subcommand's docstring and every flag it defined (absl's and libraries' own left out)."""
    from absl import flags

    parts = [f"usage: {prog} [flags]", "", (module.__doc__ or text).strip(), "", "flags:"]
    for defining_module in flags.FLAGS.flags_by_module_dict():
        if defining_module.split(".")[0] == "ecg_jax":
            # module_help's first line names the defining module: an implementation detail here
            parts += flags.FLAGS.module_help(defining_module).strip().splitlines()[1:]
    return "\n".join(parts)


def _before_double_dash(args: list[str]) -> list[str]:
    return args[:args.index("--")] if "--" in args else args
