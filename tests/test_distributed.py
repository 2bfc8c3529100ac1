"""DistributedDataParallel: sharding, a real two-process gloo run through the
dispatcher and Ray Train that trains and records one run, and the one training
loop's bit-for-bit resume on two processes."""
import os
import threading
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bigmodels.models.checkpoints import load_checkpoint, model_from_checkpoint
from bigmodels.train.ranks import Ranks
from bigmodels.runs.store import RunStore
from bigmodels.train.config import default_config
from bigmodels.cluster.dispatcher import Dispatcher
from bigmodels.runs.queue import submit
from bigmodels.data.mnist import load_folder
from bigmodels.harness.server import free_port
from bigmodels.train.engine import train
from tests.conftest import write_mnist_folder

cuda = pytest.mark.cuda


@pytest.mark.parametrize("n, batch, world", [(2000, 64, 2), (2001, 64, 2), (100, 7, 3), (10, 64, 4)])
def test_shards_cover_every_image_once_with_equal_step_counts(n, batch, world):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    shards = [Ranks(torch.device("cpu"), rank, world).shard(order, batch) for rank in range(world)]
    assert len({len(s) for s in shards}) == 1 == len({Ranks(torch.device("cpu"), 0, world).steps_per_epoch(n, batch), len(shards[0])})
    seen = torch.cat([b for s in shards for b in s])
    assert sorted(seen.tolist()) == list(range(n))
    for step in range(len(shards[0])):  # each step's global batch is at most batch x world
        assert sum(len(s[step]) for s in shards) <= batch * world
        assert all(len(s[step]) <= batch for s in shards)


def ddp_config(**changes):
    return default_config("cnn", **{"epochs": 2, "batch_size": 64, "train_subset": 2000, "device": "cpu",
                                    "seed": 5, **changes})


def dispatch_until_done(store: RunStore, folder, run_id: str, timeout: float = 300) -> None:
    """A dispatcher in a thread of this process serves ``store`` until ``run_id`` ends."""
    dispatcher = Dispatcher(store.home, data_dir=str(folder), warm_models=[])
    thread = threading.Thread(target=dispatcher.serve, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while store.get(run_id).status in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        dispatcher.stop()
        thread.join(60)


def test_two_cpu_processes_train_one_run_with_ray_train_and_gloo(ray_cluster, tmp_path, small_mnist):
    """A run on two processes goes through the dispatcher to Ray Train's TorchTrainer
    (gloo): rank 0's events and checkpoints arrive in the store like a session's."""
    folder = write_mnist_folder(small_mnist, tmp_path / "mnist")
    store = RunStore(tmp_path / "home")
    run = submit(store, ddp_config(), world_size=2).run
    assert run.world_size == 2 and run.target == "cpu"
    single = submit(store, ddp_config())
    assert not single.cached  # one process is another computation
    store.request_cancel(single.run.id)
    dispatch_until_done(store, folder, run.id)
    done = store.get(run.id)
    assert done.status == "succeeded", (done.error, store.logs(run.id)[-5:])
    assert [r.id for r in store.list_runs(statuses=["succeeded"])] == [run.id]  # one run, recorded once
    assert done.device == "cpu" and "x2" in done.device_name
    steps = 2 * Ranks(torch.device("cpu"), 0, 2).steps_per_epoch(2000, 64)
    assert done.step == done.total_steps == steps and [s["step"] for s in store.steps(run.id)] == list(range(1, steps + 1))
    history = store.epochs(run.id)
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[-1]["test_accuracy"] > 0.6 and history[-1]["train_loss"] < history[0]["train_loss"]
    ckpt = load_checkpoint(done.checkpoint)
    assert ckpt["world_size"] == 2 and ckpt["epoch"] == 2
    model = model_from_checkpoint(ckpt)  # a DDP run is usable like any other
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    assert any("2 Ray Train workers" in line for _, line in store.logs(run.id))
    assert submit(store, ddp_config(), world_size=2).cached
    assert not (store.home / "ray_train" / run.id).exists()  # Ray Train's scratch folder is removed


@cuda
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_two_gpus_train_one_run_with_nccl(ray_cluster, tmp_path, small_mnist):
    folder = write_mnist_folder(small_mnist, tmp_path / "mnist")
    store = RunStore(tmp_path / "home")
    run = submit(store, ddp_config(device="cuda"), world_size=2).run
    dispatch_until_done(store, folder, run.id)
    done = store.get(run.id)
    assert done.status == "succeeded", done.error
    assert store.epochs(run.id)[-1]["memory_bytes"] > 0


def _ddp_rank(rank: int, world: int, port: int, folder: str, checkpoint: str, stop_after: int | None,
              resume: bool, out: str) -> None:
    """One of ``world`` processes training ``ddp_config()`` with the engine's one loop."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        calls = [0]

        def stop_after_some_steps() -> bool:
            calls[0] += 1
            return stop_after is not None and calls[0] > stop_after

        result = train(ddp_config(), load_folder(folder), should_stop=stop_after_some_steps,
                       checkpoint_path=checkpoint, resume_from=checkpoint if resume else None,
                       ranks=Ranks.from_process_group(torch.device("cpu")))
        if rank == 0:
            torch.save({"state": result.model.state_dict(), "stopped": result.stopped,
                        "history": result.history}, out)
    finally:
        dist.destroy_process_group()


def _two_processes(tmp_path, folder, name, stop_after=None, resume=False) -> dict:
    out = tmp_path / f"{name}.pt"
    mp.spawn(_ddp_rank, args=(2, free_port(), str(folder), str(tmp_path / f"{name}-ckpt.pt" if not resume else
                                                                   tmp_path / "stopped-ckpt.pt"),
                              stop_after, resume, str(out)), nprocs=2, join=True)
    return torch.load(out, weights_only=True)


@pytest.mark.slow  # three two-process runs, each spawning and importing torch twice: ~2 minutes on 2 cores
def test_two_processes_stopped_mid_epoch_then_resumed_end_bit_for_bit(tmp_path, small_mnist):
    folder = write_mnist_folder(small_mnist, tmp_path / "mnist")
    whole = _two_processes(tmp_path, folder, "whole")
    stopped = _two_processes(tmp_path, folder, "stopped", stop_after=3)  # votes every 5 steps: stops at step 15
    assert stopped["stopped"] and stopped["history"] == []
    assert load_checkpoint(tmp_path / "stopped-ckpt.pt")["step_in_epoch"] == 15
    resumed = _two_processes(tmp_path, folder, "resumed", resume=True)
    assert not resumed["stopped"]
    for key, tensor in whole["state"].items():
        assert torch.equal(tensor, resumed["state"][key]), key
    # the resumed epoch's training loss covers the whole epoch, both ranks' images included
    assert resumed["history"][0]["train_loss"] == pytest.approx(whole["history"][0]["train_loss"], rel=1e-6)
