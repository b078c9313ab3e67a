"""The ``fastloss`` command: ``fastloss bench|score|config ...`` (``fastloss COMMAND --help`` for each)."""
import argparse
import json
import sys

from ._version import __version__

PROG = "fastloss"
COMMANDS = {
    "bench": "benchmark fastloss against PyTorch, NumPy and scikit-learn on built-in synthetic workloads",
    "score": "compute a loss over Parquet (or .npy / .npz) files of predictions and targets",
    "config": "show the build and this machine: vector ISA in use, OpenMP, threads, versions",
}
USAGE = f"usage: {PROG} [-h] [--version] {{{','.join(COMMANDS)}}} ..."
HELP = "\n".join([
    USAGE,
    "",
    "Fast, exact, deterministic machine-learning losses on the CPU.",
    "",
    "commands:",
    *(f"  {name:<8}{text}" for name, text in COMMANDS.items()),
    "",
    "options:",
    "  -h, --help  show this help message and exit",
    "  --version   show the version and exit",
    "",
    f"Run '{PROG} COMMAND --help' for the options of a command, e.g. '{PROG} score --help'.",
])


def _config_main(argv):
    p = argparse.ArgumentParser(prog=f"{PROG} config", description=COMMANDS["config"] + ".")
    p.add_argument("--json", action="store_true", help="print the configuration as one JSON object")
    args = p.parse_args(argv)        # an unknown argument is an error (exit status 2)
    from . import config, show_config
    if args.json:
        print(json.dumps(config()))
    else:
        show_config()
    return 0


def main(argv=None):
    """Entry point of the ``fastloss`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(HELP, file=sys.stderr)
        print(f"{PROG}: error: a command is required ({', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command in ("-h", "--help"):
        print(HELP)
        return 0
    if command in ("-V", "--version"):
        print(f"{PROG} {__version__}")
        return 0
    if command == "config":
        return _config_main(rest)
    if command == "bench":
        from .bench import main as bench_main
        return bench_main(rest)
    if command == "score":
        from .score_cli import main as score_main
        return score_main(rest)
    print(USAGE, file=sys.stderr)
    print(f"{PROG}: error: unknown command {command!r} (choose from {', '.join(COMMANDS)})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
