"""Starting training: in this process, under torchrun on one machine (`--nproc`), or as a SLURM job
(`--slurm`: writes an sbatch script running torchrun on every node, and submits it with `--submit`)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.files import atomic_write_text
from streamlearn.train.worker import parse_days, train_worker


def check_gpus(nproc: int) -> None:
    import torch

    if torch.cuda.is_available():
        have = torch.cuda.device_count()
        if nproc > have:
            raise StreamlearnError(f"--nproc {nproc} asks for {nproc} GPUs but this machine has {have}; "
                                   f"use --nproc {have} or --slurm for more machines")
    elif nproc > (os.cpu_count() or 1):
        raise StreamlearnError(f"--nproc {nproc} on a machine without GPUs and {os.cpu_count()} CPUs; use fewer")


def torchrun_cmd(nproc: int, args: list[str], nodes: int = 1, rdzv: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    if nodes > 1:
        cmd += ["--nnodes", str(nodes), "--rdzv_backend", "c10d", "--rdzv_endpoint", rdzv or "$MASTER_ADDR:29500"]
    else:
        cmd += ["--standalone"]
    return cmd + ["-m", "streamlearn.train"] + args


def run_torchrun(nproc: int, args: list[str]) -> int:
    check_gpus(nproc)
    env = {**os.environ, "NCCL_NVLS_ENABLE": os.environ.get("NCCL_NVLS_ENABLE", "0")}
    return subprocess.call(torchrun_cmd(nproc, args), env=env)


def write_sbatch(corpus: Corpus, run: str, nodes: int, gpus_per_node: int, args: list[str],
                 partition: str | None = None, hours: int = 72) -> Path:
    path = corpus.run_dir(run) / "train.sbatch"
    # nothing a user typed may start a new line of the script or end a quoted one early
    if partition is not None and not re.fullmatch(r"[A-Za-z0-9_.,-]+", partition):
        raise StreamlearnError(f"--partition {partition!r} is not a SLURM partition name (letters, digits, _ . , -); "
                               "give the partition as `sinfo` lists it")
    if re.search(r"[\n\r\"$`\\]", str(path.parent.resolve())):
        raise StreamlearnError(f"the run folder {path.parent} has a newline, quote, $, ` or \\ in its path, which an "
                               "sbatch script cannot carry safely; move the corpus to a plain path")
    path.parent.mkdir(parents=True, exist_ok=True)
    inner = " ".join(shlex.quote(a) for a in torchrun_cmd(gpus_per_node, args, nodes, "$MASTER_ADDR:29500"))
    inner = inner.replace("'$MASTER_ADDR:29500'", '"$MASTER_ADDR:29500"')
    lines = ["#!/bin/bash", f"#SBATCH --job-name=streamlearn-{run}", f"#SBATCH --nodes={nodes}",
             "#SBATCH --ntasks-per-node=1", f"#SBATCH --gpus-per-node={gpus_per_node}", "#SBATCH --exclusive",
             f"#SBATCH --time={hours}:00:00", f'#SBATCH --output="{path.parent}/slurm-%j.out"']
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    lines += ["set -euo pipefail",
              'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
              "export NCCL_NVLS_ENABLE=0 OMP_NUM_THREADS=8 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True",
              f"cd {shlex.quote(str(Path.cwd()))}",
              f"srun --kill-on-bad-exit=1 {inner}", ""]
    atomic_write_text(path, "\n".join(lines))
    path.chmod(0o755)
    return path


def submit(path: Path) -> str:
    if not shutil.which("sbatch"):
        raise StreamlearnError("sbatch is not on PATH; run this on the cluster's login node, or submit "
                               f"{path} yourself")
    out = subprocess.run(["sbatch", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise StreamlearnError(f"sbatch failed: {out.stderr.strip()[:200]}")
    return out.stdout.strip()


def args_for(corpus: Corpus, model, days, config_path, run, max_steps) -> list[str]:
    """The worker's argv: the corpus and the options given."""
    return [str(corpus.root)] + [a for k, v in (("--model", model), ("--days", days), ("--config", config_path),
                                                ("--run", run), ("--max-steps", max_steps)) if v is not None
                                 for a in (k, str(v))]


def launch(corpus: Corpus, model=None, days=None, config_path=None, run=None, max_steps=None, nproc: int = 1,
           slurm: bool = False, nodes: int = 2, gpus_per_node: int = 8, partition=None, do_submit: bool = False,
           force: bool = False) -> int:
    """`streamlearn train`: here, under torchrun (`nproc` > 1) or as a SLURM script; the exit status."""
    from streamlearn.core import console
    from streamlearn.core.config import load_train_config
    from streamlearn.corpus.forecast import check_room, gb, training_days

    cfg = load_train_config(corpus.config.train, config_path, model=model, run=run)
    wanted = parse_days(days)
    if slurm:  # not checked when only writing the script: the run will live on the cluster's filesystem
        path = write_sbatch(corpus, cfg.run, nodes, gpus_per_node, args_for(corpus, model, days, config_path, run,
                                                                            max_steps), partition)
        print(f"wrote {path}")
        if do_submit:
            print(submit(path))
        return 0
    # before any work: the states and exports this run keeps, against the free space (issue 28)
    n_days = len(wanted) if wanted else len(training_days(corpus.chunks.read()))
    need = check_room(corpus, cfg, n_days, force)
    console.info(f"train: will keep ~{gb(need['states'] + need['exports'])} ({need['states_kept']} training state(s) "
                 f"of {gb(need['states'] / max(1, need['states_kept'] + need['periodic_kept']))}, {n_days + 1} "
                 f"exports of {gb(need['export_each'])})")
    args = args_for(corpus, model, days, config_path, run, max_steps)
    return run_torchrun(nproc, args) if nproc > 1 else train_worker(args)
