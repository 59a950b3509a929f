"""Never lose work: interrupts save and stop cleanly, resumes are exact, sweeps resume, NaNs stop a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlhw.results import read_results
from dlhw.run.runner import run, run_safely

# LeNet with dropout (draws from the global RNG) on 400 digits, 12 steps per epoch, 3 epochs.
RUN = ["trainer.max_epochs=3", "callbacks.progress_bar=null", "data.max_train_samples=400", "model.dropout=0.3",
       "trainer.deterministic=true"]
METRICS = ("test_acc", "test_loss", "best_val_acc", "final_val_acc", "final_val_loss",
           "final_train_loss", "epochs", "global_steps")
HELPERS = str(Path(__file__).parent)


def signal_at(epoch: int, batch: int, signum: int) -> list[str]:
    return ["+callbacks.fault._target_=_helpers_robust.SignalAt", f"+callbacks.fault.epoch={epoch}",
            f"+callbacks.fault.batch={batch}", f"+callbacks.fault.signum={signum}"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The metrics of the same run, never interrupted."""
    import sys as _sys

    _sys.path.insert(0, HELPERS)
    from conftest import compose_config

    out = tmp_path_factory.mktemp("full") / "run"
    run(compose_config(["threads=1", *RUN], out))
    return read_results(out)


def interrupt(make_cfg, capsys, epoch: int, batch: int, signum: int) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        run_safely(make_cfg([*RUN, *signal_at(epoch, batch, signum)]))
    return info.value.code, capsys.readouterr().err


def test_sigint_after_epoch_1_of_3_then_resume_gives_the_uninterrupted_metrics(
    make_cfg, tmp_path, capsys, uninterrupted
) -> None:
    code, err = interrupt(make_cfg, capsys, epoch=1, batch=0, signum=signal.SIGINT)
    out = tmp_path / "run"
    assert code == 130 and "Traceback" not in err
    assert f"Continue it with: dlhw-train resume={out}" in err
    res = read_results(out)
    assert res["status"] == "interrupted" and res["signal"] == "SIGINT"
    assert res["epochs_completed"] == 1 and res["global_step"] == 12
    assert res["last_ckpt"] == str(out / "checkpoints" / "last.ckpt") and Path(res["last_ckpt"]).is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored

    run(make_cfg([*RUN, "resume=true"]))
    resumed = read_results(out)
    assert resumed["status"] == "completed" and resumed["resumed_from"] == res["last_ckpt"]
    assert {k: resumed[k] for k in METRICS} == {k: uninterrupted[k] for k in METRICS}


def test_sigterm_mid_epoch_saves_a_checkpoint_and_resume_is_still_exact(
    make_cfg, tmp_path, capsys, uninterrupted
) -> None:
    code, err = interrupt(make_cfg, capsys, epoch=2, batch=5, signum=signal.SIGTERM)
    out = tmp_path / "run"
    assert code == 143
    res = read_results(out)
    assert res["status"] == "interrupted" and res["signal"] == "SIGTERM"
    assert res["epochs_completed"] == 2 and res["global_step"] == 29  # 24 + 5 batches of epoch 2
    mid = torch.load(res["interrupted_ckpt"], weights_only=True)
    assert mid["global_step"] == 29  # the mid-epoch state was saved
    run(make_cfg([*RUN, "ckpt_path=last"]))  # the same as resume=true
    resumed = read_results(out)
    assert {k: resumed[k] for k in METRICS} == {k: uninterrupted[k] for k in METRICS}


def test_completed_run_is_skipped_on_resume_and_never_overwritten(make_cfg, tmp_path, capsys) -> None:
    quick = ["trainer.max_epochs=1", "callbacks.progress_bar=null", "data.max_train_samples=200"]
    first = run(make_cfg(quick))
    out = tmp_path / "run"
    stamp = (out / "results.json").stat().st_mtime_ns
    assert run(make_cfg([*quick, "resume=true"])) == first  # skipped: the stored metric comes back
    assert (out / "results.json").stat().st_mtime_ns == stamp
    with pytest.raises(SystemExit) as info:  # a fresh run into the same directory is refused
        run_safely(make_cfg(quick))
    assert info.value.code == 2
    assert "already holds a run (status completed" in capsys.readouterr().err
    assert read_results(out)["status"] == "completed" and (out / "results.json").stat().st_mtime_ns == stamp


def test_nonfinite_loss_stops_the_run_as_diverged_with_its_step(make_cfg, tmp_path, capsys) -> None:
    nan_at = ["+callbacks.fault._target_=_helpers_robust.NaNLossAt", "+callbacks.fault.step=3"]
    with pytest.raises(SystemExit) as info:
        run_safely(make_cfg([*RUN, *nan_at]))
    assert info.value.code == 3
    assert "diverged" in capsys.readouterr().err
    res = read_results(tmp_path / "run")
    assert res["status"] == "diverged" and res["diverged_step"] == 3 and res["global_steps"] == 4
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()  # no NaN weights saved
    # the accelerator path (checked every 5 steps, without a sync per step) names the same step
    with pytest.raises(SystemExit):
        run_safely(make_cfg([*RUN, *nan_at, "nan_check_every=5"], name="lazy"))
    lazy = read_results(tmp_path / "lazy")
    assert lazy["status"] == "diverged" and lazy["diverged_step"] == 3 and lazy["global_steps"] == 5


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": HELPERS}
    env.pop("HYDRA_FULL_ERROR", None)
    flags = [a for a in args if a.startswith("-") and not a.startswith("-callbacks")]
    overrides = [a for a in args if a not in flags]
    proc = subprocess.run([sys.executable, "-m", "dlhw.cli.train", *flags, "threads=1", *overrides],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return proc


def test_resume_argv_reapplies_the_runs_own_overrides(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from dlhw.errors import UserError
    from dlhw.run.resume import resume_argv

    run_dir = tmp_path / "r"
    (run_dir / ".hydra").mkdir(parents=True)
    saved = {"hydra": ["hydra/launcher=joblib", f"hydra.run.dir={run_dir}"],
             "task": ["model=mlp", "optimizer.lr=0.1", "resume=true"]}
    OmegaConf.save({"hydra": {"overrides": saved}}, run_dir / ".hydra" / "hydra.yaml")
    assert resume_argv([f"resume={run_dir}", "optimizer.lr=0.05"]) == [
        "hydra/launcher=joblib", "model=mlp", "optimizer.lr=0.05", f"hydra.run.dir={run_dir.resolve()}",
        "resume=true",
    ]
    sweep = tmp_path / "s"
    sweep.mkdir()
    OmegaConf.save({"hydra": {"overrides": {"hydra": [], "task": ["seed=0,1"]}}}, sweep / "multirun.yaml")
    assert resume_argv([f"resume={sweep}"]) == ["-m", "seed=0,1", f"hydra.sweep.dir={sweep.resolve()}", "resume=true"]
    assert resume_argv(["resume=true", "seed=3"]) == ["resume=true", "seed=3"]
    with pytest.raises(UserError, match="no such run directory"):
        resume_argv([f"resume={tmp_path / 'nope'}"])
    with pytest.raises(UserError, match="not the directory of a dlhw run"):
        resume_argv([f"resume={tmp_path}"])


@pytest.mark.slow
def test_cli_interrupt_then_resume_by_run_directory(tmp_path: Path, uninterrupted) -> None:
    out = tmp_path / "cli-run"
    proc = cli(*RUN, *signal_at(1, 0, signal.SIGINT), f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and read_results(out)["status"] == "interrupted"
    # `resume=DIR` re-applies the run's own overrides; here the fault injector is switched off
    proc = cli(f"resume={out}", "~callbacks.fault", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = read_results(out)
    assert res["status"] == "completed" and res["test_acc"] == uninterrupted["test_acc"]


def test_sweep_resume_skips_completed_jobs_and_a_failing_job_does_not_stop_the_sweep(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    quick = ["trainer.max_epochs=1", "callbacks.progress_bar=null", "data.max_train_samples=200"]
    proc = cli("-m", *quick, "+callbacks.fault._target_=_helpers_robust.NaNLossAt",
               "+callbacks.fault.step=2,1000", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job0, job1 = sweep / "0_callbacks.fault.step=2", sweep / "1_callbacks.fault.step=1000"
    assert read_results(job0)["status"] == "diverged"
    assert read_results(job1)["status"] == "completed"  # ran after job 0 failed
    assert "2 jobs, 1 completed, 1 diverged" in proc.stdout and f"job {job0.name} diverged" in proc.stdout
    stamp = (job1 / "results.json").stat().st_mtime_ns
    (job0 / "results.json").unlink()  # as if job 0 had never finished
    proc = cli("-m", f"resume={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in sweep.iterdir() if p.name[0].isdigit()) == [job0.name, job1.name]
    assert (job1 / "results.json").stat().st_mtime_ns == stamp  # completed job skipped, same name
    assert read_results(job0)["status"] == "diverged"  # job 0 ran again (and diverged again)


def test_ctrl_c_between_two_jobs_of_a_sweep_is_one_line_and_exit_130(tmp_path: Path) -> None:
    """A Ctrl+C after job 0 ended and before job 1 started (outside any run) ends like every
    other interruption: one dlhw: line that says how to go on, exit 130, no traceback."""
    sweep = tmp_path / "sweep"
    proc = cli("-m", "trainer.max_epochs=1", "callbacks.progress_bar=null", "data.max_train_samples=100",
               "seed=0,1", "report=false", "+hydra.callbacks.interrupt._target_=_helpers_robust.InterruptAfterJob",
               f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("dlhw: ") == 1, proc.stderr[-3000:]
    assert f"dlhw: sweep interrupted between jobs; the jobs that completed keep their results. " \
           f"Continue with: dlhw-train -m resume={sweep}" in proc.stderr
    assert read_results(sweep / "0_seed=0")["status"] == "completed" and not (sweep / "1_seed=1").exists()


def test_plain_trainer_fit_leaves_the_signal_handlers_as_it_found_them(make_cfg) -> None:
    from dlhw.run.build import build

    p = build(make_cfg(["trainer.max_epochs=1", "data.max_train_samples=100", "callbacks.progress_bar=null"]))
    p.trainer.fit(p.module, datamodule=p.datamodule)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
