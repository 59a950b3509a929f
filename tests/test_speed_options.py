"""Speed options and the fast paths they rely on: batched crop/flip, fused normalisation, thread split,
channels_last, torch.compile (or its clean refusal), bf16-mixed on the CPU."""

from __future__ import annotations

import pytest
import torch
from _helpers_augment import augment
from omegaconf import OmegaConf

from dlhw.data.augment import Augment
from dlhw.data.loader import BatchTransform, TensorLoader, crop_flip
from dlhw.errors import UserError
from dlhw.results import read_results
from dlhw.run.runner import run

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
QUICK = ["trainer.max_epochs=1", "callbacks.progress_bar=null", "data.max_train_samples=300",
         "data.batch_size=64", "logger=none"]


def images(n: int = 16, h: int = 12, w: int = 10) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def reference(x: torch.Tensor, aug: Augment, seed: int) -> torch.Tensor:
    """The straightforward float pipeline: scale, augment, normalise."""
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    x = augment(aug, x.float() / 255, torch.Generator().manual_seed(seed))
    return (x - mean) / std


@pytest.mark.parametrize("padding,flip", [(4, True), (3, False), (0, True), (1, True)])
def test_crop_flip_gives_the_images_of_augment_exactly(padding: int, flip: bool) -> None:
    x = images()
    want = augment(Augment(crop_padding=padding, hflip=flip), x.float(), torch.Generator().manual_seed(5))
    got = crop_flip(x, padding, flip, torch.Generator().manual_seed(5))
    assert got.dtype == torch.uint8 and torch.equal(got.float(), want)
    assert torch.equal(crop_flip(x.float(), padding, flip, torch.Generator().manual_seed(5)), want)


@pytest.mark.parametrize("aug", [Augment(), Augment(4, True), Augment(2, True, rotation=10, scale=0.1)])
def test_batch_transform_matches_the_float_pipeline(aug: Augment) -> None:
    x = images()
    t = BatchTransform(255.0, MEAN, STD, aug)
    got = t(x, torch.Generator().manual_seed(3), train=True)
    assert got.dtype == torch.float32 and got.shape == x.shape
    assert torch.allclose(got, reference(x, aug, 3), atol=1e-5)
    again = t(x, torch.Generator().manual_seed(3), train=True)
    assert torch.equal(got, again)  # seeded: the same batch again
    evaluated = t(x, None, train=False)  # no augmentation outside training
    assert torch.allclose(evaluated, reference(x, Augment(), 0), atol=1e-5)


def test_batch_transform_never_writes_into_the_stored_data() -> None:
    stored = torch.rand(8, 3, 6, 6)
    copy = stored.clone()
    out = BatchTransform(1.0, MEAN, STD, Augment())(stored[:4])
    assert torch.equal(stored, copy) and not torch.equal(out, stored[:4])
    seq = torch.rand(4, 5, 8)  # float sequences, no normalisation: returned as is
    assert BatchTransform()(seq) is seq
    binary = BatchTransform(255.0, binarize=True)(torch.tensor([[0, 127, 128, 255]], dtype=torch.uint8))
    assert binary.tolist() == [[0.0, 0.0, 1.0, 1.0]]


def test_eval_batches_are_slices_in_order_and_train_batches_are_a_seeded_permutation() -> None:
    x = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1)
    y = torch.arange(50)
    t = BatchTransform()
    ev = list(TensorLoader(x, y, 16, t, train=False))
    assert [len(b[1]) for b in ev] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([b[1] for b in ev]), y)
    assert torch.equal(torch.cat([b[0] for b in ev]).flatten(), y.float())
    def order(seed: int, epoch: int) -> torch.Tensor:
        loader = TensorLoader(x, y, 16, t, True, seed=seed, epoch_fn=lambda: epoch)
        return torch.cat([b[1] for b in loader])

    tr = [order(s, e) for s, e in ((1, 0), (1, 0), (1, 1), (2, 0))]
    assert torch.equal(tr[0], tr[1]) and not torch.equal(tr[0], tr[2]) and not torch.equal(tr[0], tr[3])
    assert sorted(tr[2].tolist()) == list(range(50))


# ----------------------------------------------------------------------------- threads
def test_thread_split_gives_each_parallel_job_its_share_of_the_cores() -> None:
    from dlhw.sweep.threads import job_threads, parallel_jobs

    assert job_threads(None, cores=2, n_jobs=1) == 2
    assert job_threads(None, cores=2, n_jobs=2) == 1  # two jobs on two cores: one thread each
    assert job_threads(None, cores=8, n_jobs=3) == 2
    assert job_threads(None, cores=1, n_jobs=4) == 1  # never zero
    assert job_threads(3, cores=2, n_jobs=2) == 3  # an explicit value wins
    assert parallel_jobs(None, 4) == 1 and parallel_jobs(2, 4) == 2
    assert parallel_jobs(-1, 4) == 4 and parallel_jobs(-2, 4) == 3  # joblib's negative n_jobs
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(UserError, match="threads="):
            job_threads(bad, cores=2)


def test_joblib_multirun_job_sets_cores_over_n_jobs_threads(monkeypatch) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    import dlhw.sweep.threads as threads
    from dlhw.config.compose import compose

    cfg = compose(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], return_hydra_config=True)
    OmegaConf.set_readonly(cfg, False)
    cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    before = torch.get_num_threads()
    try:
        assert threads.sweep_parallel_jobs() == 2
        assert threads.configure_threads(None) == 2 and torch.get_num_threads() == 2
        assert threads.configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        OmegaConf.set_readonly(cfg.hydra, False)
        cfg.hydra.mode = RunMode.RUN
        HydraConfig.instance().set_config(cfg)
    assert threads.sweep_parallel_jobs() == 1  # a single run uses every core it owns


def test_prefer_passive_wait_keeps_a_users_choice(monkeypatch) -> None:
    from dlhw.sweep.threads import prefer_passive_wait

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    prefer_passive_wait()
    import os

    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    prefer_passive_wait()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


# ----------------------------------------------------------------------------- options
def test_channels_last_keeps_outputs_and_trains(make_cfg, tmp_path) -> None:
    from dlhw.models import LeNet
    from dlhw.run.build import apply_speed_options

    torch.manual_seed(0)
    plain = LeNet((3, 32, 32), 10)
    nhwc = LeNet((3, 32, 32), 10)
    nhwc.load_state_dict(plain.state_dict())
    apply_speed_options(nhwc, channels_last=True)
    assert nhwc.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert list(nhwc.state_dict()) == list(plain.state_dict())  # checkpoints stay interchangeable
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(nhwc(x), plain(x), atol=1e-5)
    run(make_cfg([*QUICK, "channels_last=true"]))
    assert read_results(tmp_path / "run")["status"] == "completed"


def test_bf16_mixed_precision_runs_on_the_cpu(make_cfg, tmp_path) -> None:
    run(make_cfg([*QUICK, "trainer.precision=bf16-mixed"]))
    res = read_results(tmp_path / "run")
    assert res["status"] == "completed" and res["test_acc"] is not None and res["threads"] == 1


def test_speed_flags_must_be_booleans(make_cfg) -> None:
    """A config check: refused with the other bad values, before anything is loaded or built."""
    from dlhw.config.validate import validate

    with pytest.raises(UserError, match="channels_last=yes: must be true or false"):
        validate(make_cfg(["channels_last=yes"]))
    with pytest.raises(UserError, match="compile=1: must be true or false"):
        validate(make_cfg(["compile=1"]))


def test_compile_without_a_compiler_is_refused_with_the_fix(monkeypatch) -> None:
    import dlhw.run.build as speed

    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setattr(speed.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="compile=false"):
        speed.apply_speed_options(torch.nn.Linear(2, 2), compile=True)


def test_compile_flag_composes_and_is_off_by_default(make_cfg) -> None:
    cfg = make_cfg(["compile=true", "channels_last=true"])
    assert cfg.compile is True and cfg.channels_last is True
    default = make_cfg([])
    assert default.compile is False and default.channels_last is False


@pytest.mark.slow
def test_compiled_mlp_trains(make_cfg, tmp_path) -> None:
    run(make_cfg([*QUICK, "model=mlp", "compile=true"]))
    assert read_results(tmp_path / "run")["status"] == "completed"


def test_batch_mean_weights_by_samples_and_resets() -> None:
    from dlhw.lit.metrics import BatchMean

    m = BatchMean()
    m.update(torch.tensor(1.0), 3)
    m.update(torch.tensor(4.0), 1)  # a short last batch counts for its samples only
    assert m.compute().item() == pytest.approx(1.75)
    m.reset()
    m.update(torch.tensor(2.0), torch.tensor(5))
    assert m.compute().item() == pytest.approx(2.0)
