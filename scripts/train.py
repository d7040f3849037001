"""The script msrun starts in every worker: data-parallel training with the flags of `python -m vit_ms train`.

    msrun --worker_num=2 --local_worker_num=2 --master_port=8118 --join=True scripts/train.py --config course

It lives outside the package, so no module of vit_ms imports the command line (imports flow one way).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's vit_ms, installed or not

from vit_ms.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
