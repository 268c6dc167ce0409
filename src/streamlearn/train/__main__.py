"""Entry point for torchrun: `python -m torch.distributed.run ... -m streamlearn.train CORPUS [options]`."""

import sys

from streamlearn.train.worker import train_worker

sys.exit(train_worker(sys.argv[1:]))
