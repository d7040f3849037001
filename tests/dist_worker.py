"""Run under msrun by test_distributed.py: trains with vit_ms.train and saves every rank's final weights."""
import json
import os
import sys

import numpy as np

from vit_ms.train import TrainConfig, train

config, weights_dir = json.loads(sys.argv[1]), sys.argv[2]


def save_weights(epoch, record, model):
    rank = os.environ.get("RANK_ID", "0")
    np.savez(os.path.join(weights_dir, f"rank{rank}.npz"), **{p.name: p.asnumpy() for p in model.get_parameters()})


train(TrainConfig(**config), on_epoch_end=save_weights)
