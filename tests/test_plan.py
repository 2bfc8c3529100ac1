"""The launch plan refuses what cannot work, with a message; the CLI prints one
``error:`` line for each mistake, never a traceback."""
import gzip
import json
import os
import subprocess
import sys

import pytest
import torch

from bigmodels.data.mnist import ENV_DATA_DIR
from bigmodels.models.checkpoints import CheckpointError, load_checkpoint, model_from_checkpoint
from bigmodels.models.registry import MAX_PARAMETERS, parameter_count
from bigmodels.base.problems import ConfigError
from bigmodels.train.config import TrainConfig, default_config, parse_model_settings, settings
from bigmodels.train.engine import _build_schedule, train
from bigmodels.train.plan import MEMORY_HEADROOM, MEMORY_SHARE, Device, Resources, estimate_memory, plan
from tests.conftest import REPO

GiB = 2**30


def cpu_with(free_bytes: int, cores: int = 2) -> Resources:
    """A CPU with this much free memory: what the plan is checked against."""
    return Resources((Device("cpu", "test CPU", free_bytes),), cores)


# ------------------------------------------------------------------ memory
def test_a_model_larger_than_free_memory_is_refused_before_anything_is_allocated():
    huge = default_config("cnn", model_overrides={"fc_sizes": [30000, 30000]}, device="cpu")
    assert 900e6 < parameter_count("cnn", **huge.model_overrides) < MAX_PARAMETERS  # 912M: under the hard cap
    with pytest.raises(ConfigError) as info:
        plan(huge, cpu_with(16 * GiB))
    (message,) = info.value.errors
    assert "training would need about" in message and "lower the batch size or the model size" in message
    assert "weights 3.4 GiB" in message and "optimizer state 6.8 GiB" in message
    assert "训练约需" in info.value.messages("zh")[0]
    # the same request on a device with room for it is planned
    roomy = plan(huge, cpu_with(64 * GiB))
    assert roomy.memory.total * MEMORY_HEADROOM < 64 * GiB * MEMORY_SHARE


def test_the_memory_estimate_adds_up_weights_gradients_optimizer_and_activations():
    adam = default_config("cnn")
    n = parameter_count("cnn")
    estimate = estimate_memory(adam, n)
    assert (estimate.weights, estimate.grads, estimate.optimizer) == (4 * n, 4 * n, 8 * n)
    sgd = estimate_memory(default_config("cnn", optimizer="sgd", momentum=0.0), n)
    assert sgd.optimizer == 0 and estimate_memory(default_config("cnn", optimizer="sgd"), n).optimizer == 4 * n
    # activations are measured per image and scale with the batch
    double = estimate_memory(default_config("cnn", batch_size=2 * adam.batch_size), n)
    assert double.activations == 2 * estimate.activations > 0


def test_the_estimate_is_close_to_what_training_really_holds():
    """Autograd's saved tensors for one real step, against the meta-device probe."""
    config = default_config("lstm", batch_size=32)
    model = __import__("bigmodels.models.registry", fromlist=["create_model"]).create_model("lstm")
    params = {id(p) for p in model.parameters()}
    saved = 0

    def pack(t):
        nonlocal saved
        if id(t) not in params and id(t._base) not in params:
            saved += t.numel() * t.element_size()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.train()(torch.zeros(32, 1, 28, 28))
    estimate = estimate_memory(config, parameter_count("lstm")).activations
    assert 0.5 < estimate / saved < 2.0


# -------------------------------------------------------------- step counts
@pytest.mark.parametrize("steps", range(1, 13))
def test_every_step_count_trains_with_every_schedule(steps):
    for schedule in ("onecycle", "cosine", "step", "constant"):
        config = TrainConfig(schedule=schedule, lr=0.01)
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
        scheduler = _build_schedule(config, optimizer, steps)
        for _ in range(steps):
            optimizer.step()
            scheduler.step()


def test_exactly_four_optimizer_steps_train(small_mnist):
    """4 steps at 25% warm-up made OneCycleLR divide by zero."""
    config = default_config("cnn", epochs=4, batch_size=128, train_subset=100, device="cpu")
    result = train(config, small_mnist)
    assert len(result.history) == 4


# ------------------------------------------------------------ bad settings
@pytest.mark.parametrize("overrides, fragment", [
    ({"fc_sizes": "abc"}, "fc_sizes must be a list of whole numbers"),
    ({"fc_sizes": [1.5, 2]}, "fc_sizes must be a list of whole numbers"),
    ({"kernel_size": "5"}, "kernel_size must be a whole number"),
    ({"dropout": True}, "dropout must be a number"),
    ({"fc_sizes": list(range(1, 100))}, "may list at most"),
    ({3: 1}, "unknown model setting"),
])
def test_ill_typed_model_settings_get_a_message(overrides, fragment):
    with pytest.raises(ConfigError) as info:
        plan(default_config("cnn", model_overrides=overrides))
    assert any(fragment in e for e in info.value.errors), info.value.errors


def test_ten_thousand_nested_lists_get_a_message_not_a_recursion_error():
    deep = "[" * 10_000 + "]" * 10_000
    problem = parse_model_settings('{"fc_sizes": ' + deep + "}")
    assert "nested too deeply" in str(problem)
    nested: list = []
    for _ in range(10_000):
        nested = [nested]
    with pytest.raises(ConfigError) as info:
        plan(default_config("cnn", model_overrides={"fc_sizes": nested}))
    assert "fc_sizes must be a list of whole numbers" in info.value.errors[0]
    assert "nested too deeply to show" in info.value.errors[0]


def test_every_problem_is_listed_and_translated():
    bad = TrainConfig(epochs=0, lr=0, optimizer="x", batch_size=2.5)
    with pytest.raises(ConfigError) as info:
        plan(bad)
    assert len(info.value.problems) == 4
    assert all(not any(c.isascii() and c.isalpha() for c in m.split("（")[0][:2]) or "必须" in m
               for m in info.value.messages("zh"))


def test_every_declared_setting_has_a_label_and_help_in_both_languages():
    from bigmodels.base.i18n import translate

    for name, how in settings().items():
        for lang in ("en", "zh"):
            assert translate(how.label_key(name), lang)
            help_text = translate(how.help_key(name), lang, **how.bounds())
            if how.high is not None and how.kind != "choice":
                assert str(how.bounds()["high"]) in help_text  # the bound comes from the declaration


# ---------------------------------------------------------------- data size
def test_a_subset_larger_than_the_data_is_reported_as_the_number_used(small_mnist):
    config = default_config("cnn", train_subset=100_000, epochs=1, device="cpu")
    planned = plan(config, data_size=len(small_mnist.train_labels))
    assert planned.train_size == len(small_mnist.train_labels)
    (note,) = planned.notes
    assert "100,000 training images asked for" in str(note) and f"{len(small_mnist.train_labels):,}" in str(note)
    events = []
    train(planned, small_mnist, on_event=events.append)
    assert events[0].data["train_size"] == len(small_mnist.train_labels)
    assert events[0].data["notes"] == [str(note)]


# ---------------------------------------------------------------- devices
def test_devices_and_processes_the_server_lacks_are_refused():
    cpu = cpu_with(16 * GiB, cores=2)
    with pytest.raises(ConfigError, match="device cuda was asked for, but this server has none; present: cpu"):
        plan(default_config("cnn", device="cuda"), cpu)
    with pytest.raises(ConfigError, match="fp16 autocast needs a GPU"):
        plan(default_config("cnn", precision="fp16"), cpu)
    with pytest.raises(ConfigError, match="3 CPU processes asked for, but this machine has 2 cores"):
        plan(default_config("cnn"), cpu, world_size=3)
    with pytest.raises(ConfigError, match="processes must be a whole number from 1 to 1024"):
        plan(default_config("cnn"), cpu, world_size=0)
    gpus = Resources((Device("cuda:0", "GPU", 80 * GiB), Device("cuda:1", "GPU", 80 * GiB),
                      Device("cpu", "CPU", 16 * GiB)), 16)
    assert plan(default_config("cnn"), gpus, world_size=2).devices == ("cuda:0", "cuda:1")
    with pytest.raises(ConfigError, match="4 processes need 4 GPUs; 2 are present"):
        plan(default_config("cnn"), gpus, world_size=4)


# -------------------------------------------------------------- checkpoints
def test_a_checkpoint_asking_for_enormous_layers_is_refused_before_they_are_allocated():
    payload = load_checkpoint(REPO / "bigmodels" / "weights" / "cnn.pt")
    payload["model_config"] = {**payload["model_config"], "fc_sizes": [10**6, 10**6]}  # 10^12 parameters
    with pytest.raises(CheckpointError, match="the config asks for 1,000,412,002,582 parameters"):
        model_from_checkpoint(payload)
    payload["model_config"] = {"fc_sizes": "abc"}
    with pytest.raises(CheckpointError, match="does not describe a model this version can build"):
        model_from_checkpoint(payload)


# -------------------------------------------------------------------- CLI
def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bigmodels", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, **(env or {})})


def one_error_line(proc, fragment):
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors and any(fragment in e for e in errors), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for a GPU that is absent")
def test_the_cli_refuses_a_missing_gpu_in_one_line(small_mnist_dir):
    one_error_line(run_cli("train", "--device", "cuda", "--data-dir", small_mnist_dir),
                   "device cuda was asked for, but this server has none")


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 works on a GPU")
def test_the_cli_refuses_fp16_on_the_cpu_in_one_line(small_mnist_dir):
    one_error_line(run_cli("train", "--precision", "fp16", "--data-dir", small_mnist_dir), "fp16 autocast needs a GPU")


def test_the_cli_refuses_a_resume_file_that_is_not_a_checkpoint(tmp_path, small_mnist_dir):
    fake = tmp_path / "notes.pt"
    fake.write_text("not a checkpoint")
    one_error_line(run_cli("train", "--resume", str(fake), "--data-dir", small_mnist_dir), "not a readable checkpoint")


def test_the_cli_refuses_bad_counts():
    for args, fragment in ((("train", "--threads", "-3"), "must be at least 1"),
                           (("eval", "--checkpoint", "x.pt", "--repeats", "0"), "must be at least 1"),
                           (("train", "--epochs", "0"), "Epochs must be from 1 to 200"),
                           (("train", "--set", "fc_sizes=abc"), "fc_sizes must be a list of whole numbers")):
        one_error_line(run_cli(*args), fragment)


def test_the_cli_trains_four_steps_and_reports_the_images_used(small_mnist_dir):
    proc = run_cli("train", "--epochs", "4", "--train-subset", "100", "--batch-size", "128",
                   "--data-dir", small_mnist_dir)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["train_size"] == 100


def test_an_idx_header_whose_sizes_overflow_is_one_data_error(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    header = (2051).to_bytes(4, "big") + (2**31 - 1).to_bytes(4, "big") + (2**16).to_bytes(4, "big") * 2
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        (folder / name).write_bytes(gzip.compress(header))
    for name in ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes(gzip.compress((2049).to_bytes(4, "big") + (10).to_bytes(4, "big") + bytes(10)))
    proc = run_cli("data", "--data-dir", str(folder), env={ENV_DATA_DIR: ""})
    one_error_line(proc, "idx3-ubyte")
