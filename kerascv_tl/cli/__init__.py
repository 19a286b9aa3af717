"""`kerascv-tl`: train | check-data | recipes | evaluate | export | predict | backbones | cv | compare | demo.

The command-line contract (recipes and docs depend on it):
  kerascv-tl train [CONFIG|RECIPE] [--data DIR] [--task T] [--backbone B] [--recipe R] [--epochs N]
                   [--image-size N] [--batch-size N] [--set key=value ...] [--output RUN_DIR] [--overwrite]
                   [--strategy NAME] [--export]
  kerascv-tl check-data [CONFIG|RECIPE] [--data DIR] [--set key=value ...] [--json]
  kerascv-tl recipes [NAME]
  kerascv-tl evaluate RUN_DIR|SAVED_MODEL --data PATH [--output DIR] [--explain N]
  kerascv-tl export RUN_DIR [--format savedmodel|litert|onnx ...] [--quantize none|float16|dynamic|int8]
                    [--output DIR] [--verify]
  kerascv-tl predict SAVED_MODEL|RUN_DIR|FILE.tflite|FILE.onnx PATH... [--output FILE.csv|FILE.jsonl]
  kerascv-tl backbones [--check]
  kerascv-tl cv [CONFIG|RECIPE] [--data DIR] --folds K [--final] [--export-ensemble] [--set key=value ...]
  kerascv-tl compare CONFIG|RECIPE [--backbones a,b,c] [--allow-random] [--max-latency-ms X] [--output DIR]
  kerascv-tl demo
Every command takes -q/--quiet and -v/--verbose. Known problems (bad config, bad data, missing weights, a
finished run, an unsafe model file) end with one `error:` line and exit status 2, not a traceback.
`check-data` exits 1 when it found problems.
"""

from __future__ import annotations

import argparse
import sys

from kerascv_tl import console

console.silence_native_logs()  # before TensorFlow is imported anywhere


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console.configure(args.verbose - args.quiet)
    try:
        return args.func(args) or 0
    except Exception as e:
        if not isinstance(e, _known_errors()):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


def _known_errors() -> tuple[type[Exception], ...]:
    """The problems a user can fix (bad config, data, weights, run folder, model file), reported as one line.
    Imported when one happened: some of these modules import TensorFlow, which `--help` or `recipes` must not."""
    from kerascv_tl.backbones import WeightsError
    from kerascv_tl.config import ConfigError
    from kerascv_tl.data.errors import DataError
    from kerascv_tl.run_folder import RunExistsError
    from kerascv_tl.utils.model_files import UnsafeModelError

    return (
        ConfigError,
        DataError,
        WeightsError,
        RunExistsError,
        UnsafeModelError,
        FileNotFoundError,
        FileExistsError,
    )


def _parser() -> argparse.ArgumentParser:
    """The CLI contract: one declaration per subcommand and option, read top to bottom in the modules below."""
    from kerascv_tl.cli import models, predict, study, train

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="count", default=0, help="only results and errors")
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="more detail (-vv: also TensorFlow's native log)"
    )
    parser = argparse.ArgumentParser(prog="kerascv-tl", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (train, models, predict, study):
        module.add_parsers(sub, common)
    return parser


if __name__ == "__main__":
    sys.exit(main())
