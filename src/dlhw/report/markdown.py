"""``dlhw-report PATH``: one Markdown (+ HTML) report with tables and plots for a run, a sweep or a
folder of them, from each run's results.json and TensorBoard events."""

from __future__ import annotations

import html
import logging
import statistics
from collections import OrderedDict
from pathlib import Path

import pandas as pd

from dlhw.errors import UserError
from dlhw.figures import signal_figure
from dlhw.report import plots
from dlhw.report.runs import Run, differing_keys, find_runs, first_conv_weight
from dlhw.report.table import Summary, configurations_table, run_name, runs_table, summarize

log = logging.getLogger("dlhw")
FILES = "report_files"
MAX_IMAGES = 24  # first-layer filter grids shown at most
MAX_DETAIL = 6  # configurations with their own signal and weight-norm figures


def _pct(v) -> str:
    return f"{v * 100:.2f}%" if isinstance(v, (int, float)) else "—"


def _num(v, fmt: str = "{:.4f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) else "—"


def _known(value):
    """A table cell's value, None where the table has none (NaN, NA)."""
    return None if pd.api.types.is_scalar(value) and pd.isna(value) else value


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _objective(v) -> str:
    if isinstance(v, (int, float)) and 0.0 <= v <= 1.0:
        return f"{v:.4f} ({v * 100:.2f}%)"
    return str(v)


def _reason(run: Run) -> str:
    """A run's status and the first line of its error (``failed: UserError: ...``)."""
    error = str(run.results.error or "").strip().splitlines()
    return f"{run.status}: {error[0][:120]}" if error else run.status


def mean_curve(runs: list[Run], tag: str) -> tuple[list[float], list[float], list[float] | None]:
    """(epochs, mean, sd) of an epoch scalar over runs, cut to the epochs that every run has;
    sd is None for a single run."""
    series = [r.epoch_series(tag) for r in runs]
    series = [s for s in series if s[1]]
    if not series:
        return [], [], None
    length = min(len(ys) for _, ys in series)
    xs = list(series[0][0][:length])
    columns = [[ys[i] for _, ys in series] for i in range(length)]
    mean = [statistics.fmean(c) for c in columns]
    sd = [statistics.stdev(c) for c in columns] if len(series) > 1 else None
    return xs, mean, sd


class Report:
    """Collects runs under a root and writes report.md, report.html and PNGs in report_files/."""

    def __init__(self, root: Path, out_dir: Path | None = None, title: str | None = None):
        self.root = Path(root)
        if not self.root.exists():
            raise UserError(f"dlhw-report: {self.root} does not exist; pass a run or sweep directory "
                            "(e.g. outputs/multirun/DATE/TIME).")
        self.runs = find_runs(self.root)
        if not self.runs:
            raise UserError(f"dlhw-report: no run under {self.root} (no results.json found); pass a run "
                            "directory, a sweep directory or a folder of them.")
        self.out = Path(out_dir) if out_dir else self.root
        self.files = self.out / FILES
        self.title = title or f"Report: {self.root.resolve().name}"
        self.keys = differing_keys(self.runs)
        self.md: list[str] = []

    # ------------------------------------------------------------------ labels and groups
    def label(self, run: Run, keys: list[str] | None = None) -> str:
        """The run's values of the differing overrides, as its sweep directory names them."""
        keys = self.keys if keys is None else keys
        parts = [f"{k}={run.overrides[k]}" for k in keys if k in run.overrides]
        return ",".join(parts) if parts else self.rel(run)

    def rel(self, run: Run) -> str:
        return run_name(run, self.root)

    def groups(self) -> OrderedDict[str, list[Run]]:
        """Runs grouped by their configuration without the seed (repeats of one config)."""
        keys = [k for k in self.keys if k != "seed"]
        by_key: OrderedDict[tuple, list[Run]] = OrderedDict()
        for run in self.runs:
            by_key.setdefault(tuple(run.overrides.get(k) for k in keys), []).append(run)
        out: OrderedDict[str, list[Run]] = OrderedDict()
        for values, runs in by_key.items():
            name = ",".join(f"{k}={v}" for k, v in zip(keys, values, strict=True) if v is not None)
            out[name or ("all runs" if len(by_key) == 1 else "(no overrides)")] = runs
        return out

    def ranked(self) -> list[tuple[str, list[Run], Summary, Summary]]:
        """(configuration, runs, best val acc, test acc), best mean validation accuracy first;
        configurations without a completed run last."""
        rows = [(name, runs, summarize(runs, "best_val_acc"), summarize(runs, "test_acc"))
                for name, runs in self.groups().items()]
        return sorted(rows, key=lambda row: -row[2].mean if row[2].mean is not None else float("inf"))

    def image(self, fig, name: str, alt: str) -> None:
        plots.save(fig, self.files / name)
        self.md.append(f"![{alt}]({FILES}/{name})\n")

    # ------------------------------------------------------------------ sections
    def headline(self) -> None:
        ranked = self.ranked()
        if len(ranked) < 2:
            return
        seeds = max(len(runs) for _, runs, _, _ in ranked)
        self.md += ["## Headline\n",
                    "Configurations ranked by mean best validation accuracy; test accuracy of each "
                    "run's best checkpoint, mean ± sd over its seeds (n completed runs); Δ is the "
                    "difference of mean test accuracy to the top configuration.\n",
                    "| rank | configuration | n | best val acc | test acc | Δ test |", "|---|---|---|---|---|---|"]
        _, _, best_val, best_test = ranked[0]
        close = []
        for rank, (name, runs, val, test) in enumerate(ranked, 1):
            if val.mean is None:
                why = _reason(next((r for r in runs if not r.completed), runs[0]))
                self.md.append(f"| — | {_cell(name)} | 0/{len(runs)} | — | — | {why} |")
                continue
            delta = "—" if rank == 1 or test.mean is None or best_test.mean is None else \
                f"{(test.mean - best_test.mean) * 100:+.2f} pp"
            self.md.append(f"| {rank} | {_cell(name)} | {test.n}/{len(runs)} | {val.pct()} | "
                           f"{test.pct()} | {delta} |")
            gap, spread = best_val.mean - val.mean, max(best_val.sd, val.sd)
            if rank > 1 and val.n > 1 and best_val.n > 1 and (gap < spread or gap == 0):
                close.append((name, gap, spread))
        self.md.append("")
        top = ranked[0][0]
        for name, gap, sd in close:
            if gap == 0:
                self.md.append(f"- `{name}` ties with `{top}` on validation accuracy: the "
                               "validation set does not rank them.")
            else:
                self.md.append(f"- `{name}` is within the seed spread of `{top}`: their mean "
                               f"validation accuracies differ by {gap * 100:.2f} pp, less than a "
                               f"standard deviation ({sd * 100:.2f} pp); more seeds would be "
                               "needed to rank them.")
        if seeds == 1:
            self.md.append("- One run per configuration: the seed-to-seed spread is unknown, so "
                           "differences of a point or two may be noise.")
        self.md.append("")

    def table(self) -> None:
        spikes = {r.path: r.json_file("loss_spikes.json") for r in self.runs}
        has_spikes = any(s and s.get("count") for s in spikes.values())
        override_cols = self.keys if self.keys else []
        head = ["run", *override_cols, "test acc", "test loss", "best val acc", "epochs", "wall time",
                "params", *(["loss spikes"] if has_spikes else []), "status"]
        self.md += ["## Runs\n", "| " + " | ".join(map(_cell, head)) + " |",
                    "|" + "---|" * len(head)]
        frame = runs_table(self.runs, self.root)  # what dlhw.runs gives and runs.csv holds
        for run, record in zip(self.runs, frame.to_dict("records"), strict=True):
            r = {k: _known(v) for k, v in record.items()}
            status = r["status"] if run.completed else f"**{r['status']}**: {(r['error'] or '')[:160]}"
            wall, params = r["wall_s"], r["params"]
            row = [r["run"], *[run.overrides.get(k, "—") for k in override_cols],
                   _pct(r["test_acc"]), _num(r["test_loss"]), _pct(r["best_val_acc"]),
                   "—" if r["epochs"] is None else str(r["epochs"]),
                   f"{wall:.1f} s" if isinstance(wall, (int, float)) else "—",
                   f"{params:,}" if isinstance(params, int) else "—"]
            if has_spikes:
                s = spikes[run.path]
                row.append(str(s["count"]) if s else "—")
            row.append(status)
            self.md.append("| " + " | ".join(_cell(c) for c in row) + " |")
        if not self.keys and len(self.runs) == 1 and self.runs[0].overrides:
            self.md.append("\nOverrides: `" + " ".join(f"{k}={v}" for k, v in
                                                          self.runs[0].overrides.items()) + "`")
        failed = [r for r in self.runs if not r.completed]
        self.md.append(f"\n{len(self.runs)} runs, {len(self.runs) - len(failed)} completed"
                       + (f", {len(failed)} not completed." if failed else ".") + "\n")

    def configurations(self) -> pd.DataFrame:
        """The configurations table (configurations.csv): one row per group of seeds."""
        return configurations_table(self.groups(), [k for k in self.keys if k != "seed"])

    def seeds(self) -> None:
        groups = self.groups()
        if not any(len(g) > 1 for g in groups.values()):
            return
        self.md += ["## Configurations: mean and spread over seeds\n",
                    "mean ± standard deviation (min–max) over the completed runs of each configuration.\n",
                    "| configuration | runs | test acc | test loss | best val acc | epoch time |",
                    "|---|---|---|---|---|---|"]
        for runs, record in zip(groups.values(), self.configurations().to_dict("records"), strict=True):
            r = {k: _known(v) for k, v in record.items()}
            epoch = f"{r['epoch_s_mean']:.2f} s" if r["epoch_s_mean"] is not None else "—"
            self.md.append(f"| {_cell(r['configuration'])} | {r['completed']}/{r['runs']} | "
                           f"{summarize(runs, 'test_acc').spread(True)} | "
                           f"{summarize(runs, 'test_loss').spread(False)} | "
                           f"{summarize(runs, 'best_val_acc').spread(True)} | {epoch} |")
        self.md.append("")

    def curves(self) -> None:
        groups = self.groups()
        repeated = any(len(g) > 1 for g in groups.values())
        sections = [("train/loss", "training loss", "Training loss per epoch", "train_loss.png"),
                    ("val/acc", "validation accuracy", "Validation accuracy per epoch", "val_acc.png")]
        wrote = False
        for tag, ylabel, title, name in sections:
            if repeated:  # one mean curve with a ± sd band per configuration
                series = [(f"{label} (n={len(runs)})", *mean_curve(runs, tag))
                          for label, runs in groups.items()]
                title += " (mean ± sd over seeds)"
            else:
                series = [(self.label(r), *r.epoch_series(tag)) for r in self.runs]
            series = [s for s in series if s[1]]
            if not series:
                continue
            if not wrote:
                self.md.append("## Curves\n")
                wrote = True
            self.image(plots.curves_figure(series, ylabel, title), name, title)
        steps = [(self.label(r), [s for s, _ in r.scalars().get("train/loss_every_step", [])],
                  [v for _, v in r.scalars().get("train/loss_every_step", [])]) for r in self.runs]
        steps = [s for s in steps if s[1]]
        if steps:
            self.image(plots.curves_figure(steps, "training loss", "Training loss per step",
                                           xlabel="step"), "train_loss_steps.png", "Training loss per step")

    def bars(self) -> None:
        labels, means, sds = [], [], []
        for name, _, _, test in self.ranked():
            if test.mean is not None:
                labels.append(name)
                means.append(test.mean)
                sds.append(test.sd)
        if len(labels) < 1 or (len(labels) == 1 and len(self.runs) == 1):
            return
        self.md.append("## Test accuracy per configuration\n")
        title = "Test accuracy" + (" (mean ± sd over seeds)" if any(sds) else "")
        self.image(plots.bar_figure(labels, means, sds, "test accuracy", title), "test_acc.png", title)

    def representatives(self) -> list[tuple[str, Run]]:
        """One run per configuration (its first completed seed), for the per-run figures."""
        groups = self.groups()
        out = []
        for name, runs in groups.items():
            run = next((r for r in runs if r.completed), runs[0])
            out.append((name if len(groups) > 1 else self.label(run), run))
        return out

    def filters(self) -> None:
        shown = 0
        for i, (label, run) in enumerate(self.representatives()):
            if shown >= MAX_IMAGES:
                self.md.append(f"\n(first-layer filters of the other runs left out: more than {MAX_IMAGES})\n")
                break
            found = first_conv_weight(run)
            if found is None:
                continue
            if shown == 0:
                self.md.append("## First-layer filters\n")
                if any(len(g) > 1 for g in self.groups().values()):
                    self.md.append("One run per configuration (its first seed), best checkpoint.\n")
            name, weight = found
            title = f"{label}: {name.removeprefix('net.')} {tuple(weight.shape)}"
            self.md.append(f"**{_cell(label)}**\n")
            self.image(plots.filters_figure(weight.numpy(), title), f"filters_{i:03d}.png", title)
            shown += 1

    def signal(self) -> None:
        recorded = [(label, s) for label, r in self.representatives()
                    if (s := r.json_file("signal_propagation.json")) and s.get("records")]
        if not recorded:
            return
        self.md += ["## Signal propagation\n",
                    "Variance of each layer's pre-activations (output of every Linear / Conv layer) on a "
                    "fixed validation batch, at initialisation (dashed) and after the last recorded "
                    "epoch, one run per configuration. Theory for ReLU nets: constant across depth "
                    "under He initialisation, shrinking layer by layer under N(0, 0.01²).\n"]
        self.image(plots.signal_comparison_figure(recorded), "signal_init.png",
                   "Pre-activation variance at initialisation")
        for i, (label, s) in enumerate(recorded[:MAX_DETAIL]):
            records = [s["records"][0], s["records"][-1]] if len(s["records"]) > 1 else s["records"]
            self.image(signal_figure({"layers": s["layers"], "records": records},
                                           title=f"{label}"), f"signal_{i:03d}.png", f"Signal: {label}")

    def dynamics(self) -> None:
        """Gradient norm per step and weight norms per layer through training (the grad_norm and
        weights dashboards), one run per configuration."""
        runs = [(label, r) for label, r in self.representatives() if r.scalars().get("grad_norm/global")]
        weights = [(label, r) for label, r in self.representatives()
                   if any(t.startswith("weight_norm/") for t in r.scalars())]
        if not runs and not weights:
            return
        self.md.append("## Weights and gradients through training\n")
        if runs:
            series = [(label, [s for s, _ in r.scalars()["grad_norm/global"]],
                       [v for _, v in r.scalars()["grad_norm/global"]]) for label, r in runs]
            self.image(plots.curves_figure(series, "global gradient norm (before clipping)",
                                           "Gradient norm per step", xlabel="step", logy=True),
                       "grad_norm.png", "Gradient norm per step")
        if len(weights) > MAX_DETAIL:
            self.md.append(f"Weight norms of the first {MAX_DETAIL} configurations.\n")
        for i, (label, r) in enumerate(weights[:MAX_DETAIL]):
            tags = sorted(t for t in r.scalars() if t.startswith("weight_norm/"))
            series = [(t.removeprefix("weight_norm/").removeprefix("net."),
                       [s for s, _ in r.scalars()[t]], [v for _, v in r.scalars()[t]]) for t in tags]
            self.image(plots.curves_figure(series, "weight norm", f"Weight norm per layer: {label}",
                                           xlabel="step"), f"weight_norm_{i:03d}.png",
                       f"Weight norms: {label}")

    def speed(self) -> None:
        """Time per epoch (and test accuracy) against the one numeric key a sweep varies."""
        keys = [k for k in self.keys if k != "seed"]
        if len(keys) != 1:
            return
        points = []
        for runs in self.groups().values():
            value = runs[0].overrides.get(keys[0])
            epoch = summarize(runs, "epoch_s")
            try:
                x = float(value)
            except (TypeError, ValueError):
                return
            if epoch.mean is not None:
                points.append((x, epoch, summarize(runs, "test_acc")))
        if len(points) < 2:
            return
        points.sort(key=lambda p: p[0])
        xs = [p[0] for p in points]
        self.md += [f"## Time per epoch against {keys[0]}\n",
                    f"| {keys[0]} | epoch time | test acc |", "|---|---|---|"]
        for x, epoch, test in points:
            sd = f" ± {epoch.sd:.2f}" if epoch.n > 1 else ""
            self.md.append(f"| {x:g} | {epoch.mean:.2f}{sd} s | {test.pct()} |")
        self.md.append("")
        series = [("epoch time", xs, [p[1].mean for p in points],
                   [p[1].sd for p in points] if any(p[1].n > 1 for p in points) else None)]
        self.image(plots.curves_figure(series, "seconds per epoch", f"Time per epoch against {keys[0]}",
                                       xlabel=keys[0]), "epoch_time.png", "Time per epoch")

    def spikes(self) -> None:
        recorded = [(r, s) for r in self.runs if (s := r.json_file("loss_spikes.json"))]
        if not recorded:
            return
        if not any(s["count"] for _, s in recorded):
            s = recorded[0][1]
            self.md.append(f"No loss spikes in any run (loss > {s['factor']} × median of the previous "
                           f"{s['window']} steps).\n")
            return
        s = recorded[0][1]
        self.md += ["## Loss spikes\n",
                    f"A spike is a step whose loss exceeds {s['factor']} × the median of the previous "
                    f"{s['window']} steps; *above the initial loss* counts the spikes whose loss is "
                    "higher than the first step's (the loss of the untrained net).\n",
                    "| run | spikes | above the initial loss | highest spike loss | spike steps (first 10) |",
                    "|---|---|---|---|---|"]
        for run, s in recorded:
            steps = ", ".join(str(x["step"]) for x in s["spikes"][:10]) or "—"
            first = run.scalars().get("train/loss_every_step", [])
            initial = first[0][1] if first else None
            above = "—" if initial is None else str(sum(x["loss"] > initial for x in s["spikes"]))
            highest = _num(max((x["loss"] for x in s["spikes"]), default=None))
            self.md.append(f"| {_cell(self.label(run))} | {s['count']} | {above} | {highest} | {steps} |")
        self.md.append("")

    def search(self) -> None:
        import yaml

        found = sorted(self.root.rglob("optimization_results.yaml"))
        for path in found:
            data = yaml.safe_load(path.read_text())
            if not isinstance(data, dict) or "best_params" not in data:
                continue
            self.md += ["## Hyperparameter search (Optuna)\n",
                        f"Best objective (validation) **{_objective(data.get('best_value'))}** with "
                        + ", ".join(f"`{k}={v}`" for k, v in data["best_params"].items())
                        + f" (from `{path.relative_to(self.root)}`).\n"]

    # ------------------------------------------------------------------ output
    def write(self) -> Path:
        for stale in self.files.glob("*.png"):  # figures of an earlier report of this folder
            stale.unlink()
        self.md = [f"# {self.title}\n", f"Source: `{self.root.resolve().name}` ({len(self.runs)} runs)\n"]
        for section in (self.headline, self.seeds, self.search, self.curves, self.bars, self.speed,
                        self.spikes, self.dynamics, self.signal, self.filters, self.table):
            section()
        text = "\n".join(self.md) + "\n"
        self.out.mkdir(parents=True, exist_ok=True)
        md_path = self.out / "report.md"
        md_path.write_text(text)
        runs_table(self.runs, self.root).to_csv(self.out / "runs.csv", index=False)
        self.configurations().to_csv(self.out / "configurations.csv", index=False)
        (self.out / "report.html").write_text(to_html(text, self.title))
        return md_path


def to_html(markdown_text: str, title: str) -> str:
    """The Markdown as a standalone HTML page (tables rendered)."""
    try:
        import markdown

        body = markdown.markdown(markdown_text, extensions=["tables"])
    except ImportError:  # the markdown package comes with tensorboard; keep a readable fallback
        body = f"<pre>{html.escape(markdown_text)}</pre>"
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:3px 6px}"
             "img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")


def build_report(path: str | Path, out_dir: str | Path | None = None, title: str | None = None) -> Path:
    """Write report.md, report.html and report_files/*.png for the runs under ``path``."""
    return Report(Path(path), Path(out_dir) if out_dir else None, title).write()
