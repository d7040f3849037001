"""Command line: ``python -m vit_ms <command> ...``; each module registers its own sub-commands."""
import argparse
import importlib
import os
import sys

os.environ.setdefault("GLOG_v", "3")  # keep MindSpore's C++ [WARNING] lines out of the terminal

# modules that define add_cli(subparsers); a command's handler is imported only when that module is present
CLI_MODULES = ("demo", "train", "evaluate", "sample_data", "download", "subset", "weights", "bench")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m vit_ms", description="Vision Transformer (ViT) in MindSpore")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in CLI_MODULES:
        try:
            module = importlib.import_module(f"vit_ms.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"vit_ms.{name}":
                continue
            raise
        module.add_cli(subparsers)
    return parser


def quiet_exit_noise(unraisable):
    # MindSpore's Cell.__del__ raises AttributeError at interpreter exit for Cells that compiled graphs keep alive;
    # it is harmless, and hundreds of such lines would bury the command's output
    if isinstance(unraisable.exc_value, AttributeError) and "__del__" in repr(unraisable.object):
        return
    sys.__unraisablehook__(unraisable)


def main(argv=None):
    sys.unraisablehook = quiet_exit_noise
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
