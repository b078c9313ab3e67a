"""Command line: ``fastloss bench ...`` / ``fastloss score ...`` (see ``fastloss <command> --help``)."""
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: fastloss {bench,config,score} ...")
        return 0
    if argv[0] == "config":
        from . import show_config
        show_config()
        return 0
    if argv[0] == "bench":
        from .bench import main as bench_main
        return bench_main(argv[1:])
    if argv[0] == "score":
        from .score_cli import main as score_main
        return score_main(argv[1:])
    print(f"fastloss: unknown command {argv[0]!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
