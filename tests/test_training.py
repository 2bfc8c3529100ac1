import argparse

import pytest
import torch

from bigmodels.models.checkpoints import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from bigmodels.data.mnist import DeviceMNIST
from bigmodels.analysis.evaluation import evaluate
from bigmodels.models.registry import create_model
from bigmodels.base.problems import ConfigError
from bigmodels.train.config import TrainConfig, default_config
from bigmodels.train.engine import train
from bigmodels.train.engine import measure_test_split as measure_split


def quick(model="cnn", **changes):
    base = dict(epochs=2, batch_size=64, train_subset=2000, device="cpu", seed=3, label_smoothing=0.0)
    if model == "lstm":
        base.update(model_overrides={"hidden_size": 64, "num_layers": 1}, epochs=3, lr=1e-2)
    if model == "transformer":
        base.update(model_overrides={"patch_size": 7, "dim": 32, "depth": 2, "heads": 2}, epochs=4, lr=4e-3)
    return default_config(model, **{**base, **changes})


@pytest.mark.parametrize("model", ["cnn", "lstm", "transformer"])
def test_a_short_run_learns(small_mnist, model):
    config = quick(model)
    events = []
    result = train(config, small_mnist, on_event=events.append)
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == config.epochs
    assert kinds.count("step") == config.epochs * (2000 // 64 + 1)
    first_loss = next(e.data["loss"] for e in events if e.kind == "step")
    assert result.history[-1]["train_loss"] < first_loss * 0.5
    torch.manual_seed(config.seed)
    untrained = create_model(config.model, **config.model_overrides)
    before = measure_split(untrained, DeviceMNIST(small_mnist))["test_accuracy"]
    assert before < 0.25  # about chance (0.10) before training
    assert result.history[-1]["test_accuracy"] > max(0.6, before + 0.4)
    for key in ("train_loss", "test_loss", "test_accuracy", "samples_per_second", "lr", "elapsed"):
        assert key in result.history[-1]


def test_stop_request_is_honoured_between_steps(small_mnist, tmp_path):
    steps = []
    result = train(quick(), small_mnist, on_event=lambda e: steps.append(e) if e.kind == "step" else None,
                   should_stop=lambda: len(steps) >= 7, checkpoint_path=tmp_path / "c.pt")
    assert result.stopped and len(steps) == 7 and result.history == []
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert (ckpt["epoch"], ckpt["step_in_epoch"]) == (0, 7)


@pytest.mark.parametrize("stop_after", [7, 32 + 5])  # mid first epoch; mid second epoch
def test_resume_is_bit_for_bit(small_mnist, tmp_path, stop_after):
    config = quick(label_smoothing=0.1)
    full = train(config, small_mnist)
    steps = []
    first = train(config, small_mnist, on_event=lambda e: steps.append(1) if e.kind == "step" else None,
                  should_stop=lambda: len(steps) >= stop_after, checkpoint_path=tmp_path / "c.pt")
    assert first.stopped
    resumed = train(config, small_mnist, resume_from=tmp_path / "c.pt", checkpoint_path=tmp_path / "c.pt")
    assert not resumed.stopped and len(resumed.history) == 2
    for name, tensor in full.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert resumed.history[-1]["test_accuracy"] == full.history[-1]["test_accuracy"]
    assert resumed.history[-1]["train_loss"] == pytest.approx(full.history[-1]["train_loss"], rel=1e-5)


def test_resume_with_other_settings_is_refused(small_mnist, tmp_path):
    train(quick(epochs=1), small_mnist, checkpoint_path=tmp_path / "c.pt")
    with pytest.raises(ConfigError, match="other settings or another number of processes"):
        train(quick(epochs=1, lr=0.5), small_mnist, resume_from=tmp_path / "c.pt")


def test_checkpoint_round_trip_and_weights_only_refusal(small_mnist, tmp_path):
    result = train(quick(epochs=1), small_mnist, checkpoint_path=tmp_path / "c.pt")
    model = model_from_checkpoint(tmp_path / "c.pt")
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(model(x), result.model.eval()(x))
    # a pickle that smuggles a Python object is refused by weights_only loading
    evil = tmp_path / "evil.pt"
    torch.save({"format": "bigmodels-checkpoint-v1", "model_name": "cnn", "model_config": {},
                "state_dict": {}, "payload": argparse.Namespace(cmd="rm -rf /")}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    save_checkpoint({"model_name": "cnn", "model_config": {}, "state_dict": {}}, tmp_path / "a.pt")
    save_checkpoint({"model_name": "cnn", "model_config": {}, "state_dict": {}}, tmp_path / "a.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


@pytest.mark.parametrize("changes,fragment", [
    ({"epochs": 0}, "Epochs must be from 1 to 200"),
    ({"batch_size": 100_000}, "Batch size must be from 1 to 8192"),
    ({"lr": -1.0}, "Learning rate must be above 0"),
    ({"lr": float("nan")}, "Learning rate must be a finite number"),
    ({"optimizer": "lion"}, "Optimizer must be one of sgd, adam, adamw"),
    ({"schedule": "warmup"}, "LR schedule must be one of"),
    ({"label_smoothing": 1.0}, "Label smoothing must be at least 0 and below 1"),
    ({"precision": "fp8"}, "Precision must be one of"),
    ({"device": "tpu"}, "Device must be one of"),
    ({"train_subset": 3}, "Training images must be 0 or empty"),
    ({"model": "mlp"}, "unknown architecture"),
    ({"model_overrides": {"dim": 30, "heads": 4}, "model": "transformer"}, "divisible"),
])
def test_config_validation_messages(changes, fragment):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes).validate()
    assert any(fragment in e for e in info.value.errors), info.value.errors


def test_config_collects_every_problem_and_hash_is_stable():
    errors = TrainConfig(epochs=0, lr=0, optimizer="x").problems()
    assert len(errors) == 3
    a, b = TrainConfig(seed=1), TrainConfig(seed=1)
    assert a.hash() == b.hash() != TrainConfig(seed=2).hash()
    assert TrainConfig.from_dict(a.to_dict()) == a


def test_nan_loss_fails_with_a_reason(small_mnist, monkeypatch):
    """A diverging run stops at the first non-finite loss instead of training on garbage."""
    import bigmodels.train.engine as engine

    calls = []
    real = engine.F.cross_entropy

    def diverging(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) > 5 else loss

    monkeypatch.setattr(engine.F, "cross_entropy", diverging)
    with pytest.raises(FloatingPointError, match="loss became nan at step 6"):
        train(quick(), small_mnist)


def test_evaluate_reports_accuracy_confusion_and_speed(small_mnist):
    result = train(quick(epochs=1), small_mnist)
    ev = evaluate(result.model, DeviceMNIST(small_mnist), timing=True, timing_repeats=5)
    total = sum(map(sum, ev.confusion))
    assert total == 2000
    assert ev.accuracy == pytest.approx(sum(ev.confusion[i][i] for i in range(10)) / total)
    assert ev.accuracy == pytest.approx(result.history[-1]["test_accuracy"])
    assert len(ev.misclassified) == total - sum(ev.confusion[i][i] for i in range(10))
    assert all(ev.predictions[i] != small_mnist.test_labels[i].item() for i in ev.misclassified)
    assert ev.latency_ms_batch1 > 0 and ev.throughput_batch256 > 0
    assert len(ev.per_class_accuracy) == 10
