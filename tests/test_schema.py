"""The config schema (dlhw.config.schema): every key of every shipped option and preset has a typed
entry, and every entry refuses what it must refuse, with one ``KEY=VALUE: must be ...`` line.

The keys and the values come from the composed configs and from the schema itself: a new option or
key is covered and fuzzed without editing this file.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from dlhw.config.compose import compose
from dlhw.config.schema import (
    TARGETS,
    Collection,
    Train,
    check,
    has_own_schema,
    resolve,
    sections,
    type_of,
)
from dlhw.config.schema.base import check_node
from dlhw.config.schema.types import counterexamples, show
from dlhw.config.validate import config_groups

# ----------------------------------------------------------------------------- every shipped config
OPTION_GROUPS = ("data", "model", "init", "loss", "optimizer", "scheduler", "trainer", "logger", "callbacks")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> dict[str, dict]:
    """Every shipped option of every group, every preset and every study arm, resolved as a job
    would see it (plain dicts), by name.

    An option of a group that Hydra places at its own key (data, model, ...) replaces that section
    of the default config (as Hydra would compose it, and much faster); the presets, arms,
    searches and debug options, which write anywhere, are composed by Hydra. An arm is composed in
    each study that sweeps it, an arm no study sweeps alone.
    """
    from omegaconf import open_dict

    from dlhw.config.compat import option_config

    tmp = tmp_path_factory.mktemp("run")
    groups = config_groups()
    assert set(OPTION_GROUPS) < set(groups)
    composed = {"defaults": compose([], output_dir=tmp)}
    for group in OPTION_GROUPS:
        for name in groups[group]:
            cfg = copy.deepcopy(composed["defaults"])
            with open_dict(cfg):
                cfg[group] = option_config(group, name)
            composed[f"{group}={name}"] = cfg
    arms = set()
    for group in sorted(set(groups) - set(OPTION_GROUPS) - {"arm"}):
        for name in groups[group]:
            cfg = compose([f"{group}={name}"], return_hydra_config=True, output_dir=tmp)
            for arm in str((cfg.hydra.sweeper.get("params") or {}).get("arm", "")).split(","):
                if arm:
                    composed[f"{group}={name} arm={arm}"] = compose([f"{group}={name}", f"arm={arm}"], output_dir=tmp)
                    arms.add(arm)
            with open_dict(cfg):
                del cfg["hydra"]  # Hydra's own section: typed by Hydra's structured configs
            composed[f"{group}={name}"] = cfg
    for arm in sorted(set(groups["arm"]) - arms):
        composed[f"+arm={arm}"] = compose([f"+arm={arm}"], output_dir=tmp)
    return {name: resolve(cfg)[0] for name, cfg in composed.items()}


def _leaves(node: dict, prefix: str = ""):
    for key, value in node.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_every_leaf_key_of_every_option_and_preset_has_a_schema_entry(shipped) -> None:
    assert len(shipped) > 90  # every option of every group, the presets and the arms
    missing, leaf_keys, option_keys = [], set(), set()
    for name, tree in shipped.items():
        covered = set()
        for prefix, schema, node in sections(Train, tree):
            if not has_own_schema(schema):
                missing.append(f"{name}: {prefix}_target_={node.get('_target_')} has no schema")
                continue
            covered |= {f"{prefix}{k}" for k in node if k in schema.keys()}
            option_keys |= {(schema, k) for k in node if k in schema.keys()}
        for leaf in _leaves(tree):
            leaf_keys.add(leaf)
            if leaf not in covered:
                missing.append(f"{name}: {leaf}")
    assert missing == [], "keys without a schema entry:\n" + "\n".join(missing)
    assert len(leaf_keys) > 150 and len(option_keys) > 250, (len(leaf_keys), len(option_keys))


def test_every_shipped_option_and_preset_passes_the_schema(shipped) -> None:
    """No false alarms: the shipped configs are what the schema allows (but for keys a preset
    leaves for the user to set, ``???``: data.root of an image folder)."""
    wrong = {name: [p.line for p in check(tree) if p.shown != "???"] for name, tree in shipped.items()}
    assert {k: v for k, v in wrong.items() if v} == {}


# ----------------------------------------------------------------------------- fuzz
def _set(tree: dict, key: str, value) -> dict:
    out = copy.deepcopy(tree)
    node = out
    *parents, last = key.split(".")
    for p in parents:
        node = node[p]
    node[last] = value
    return out


def _fuzz_cases(shipped) -> list[tuple[str, str, object, dict]]:
    """(kind, key, value, tree): for every key of every schema section met in the shipped configs
    (those the YAML leaves out as well), a value of the wrong type, values out of range, and null
    where null is not allowed; for every named entry of a collection, a value of the wrong type."""
    seen, cases = set(), []
    for tree in shipped.values():
        for prefix, schema, _ in sections(Train, tree):
            if schema in seen:
                continue
            seen.add(schema)
            for key, kind in schema.types().items():
                values = counterexamples(kind)
                cases.append(("wrong_type", f"{prefix}{key}", values["wrong_type"], tree))
                for v in values["out_of_range"]:
                    cases.append(("out_of_range", f"{prefix}{key}", v, tree))
                for v in values["null"]:
                    cases.append(("null", f"{prefix}{key}", v, tree))
        for group in ("callbacks", "logger"):
            entries = tree.get(group) or {}
            for name in entries:
                if (group, name) not in seen:
                    seen.add((group, name))
                    cases.append(("wrong_type", f"{group}.{name}", ["abc", 1.5], tree))
    return cases


def _one_problem_naming(key: str, problems) -> str | None:
    """None when ``problems`` is one line naming ``key`` in the style KEY=VALUE: ...; else why not
    (a key the shipped config leaves for the user to set, ``???``, is not counted)."""
    lines = [p.line for p in problems if p.shown != "???" or p.key == key]
    if len(lines) != 1:
        return f"{len(lines)} problems: {lines}"
    if not lines[0].startswith(f"{key}=") or ": must be " not in lines[0] or "\n" in lines[0]:
        return f"not in the KEY=VALUE: must be ... style: {lines[0]}"
    return None


def test_fuzz_every_key_wrong_type_out_of_range_and_null(shipped) -> None:
    cases = _fuzz_cases(shipped)
    failures, counted = [], {"wrong_type": 0, "out_of_range": 0, "null": 0}
    for kind, key, value, tree in cases:
        if kind == "wrong_type":  # the first candidate of another type that the key refuses
            refused = None
            for candidate in value:
                problems = check_node(Train, _set(tree, key, candidate), "")
                if any(p.key == key for p in problems):
                    refused = (candidate, problems)
                    break
            if refused is None:
                failures.append(f"{key} accepts every value ({value}): give it a type")
                continue
            value, problems = refused
        else:
            problems = check_node(Train, _set(tree, key, value), "")
        why = _one_problem_naming(key, problems)
        if why:
            failures.append(f"{key}={show(value)} ({kind}): {why}")
        counted[kind] += 1
    assert failures == [], f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures)
    assert counted["wrong_type"] > 250 and counted["out_of_range"] > 150 and counted["null"] > 150, counted


def test_fuzz_values_go_through_hydra_and_validate_in_one_line(tmp_path) -> None:
    """The same values typed as overrides (Hydra parses them) and checked by validate(): one line,
    all wrong values listed, each naming its key."""
    from dlhw.config.validate import validate
    from dlhw.errors import UserError

    bad = ["data.augment.brightness=abc", "data.augment.blur=yes", "model.width=0",
           "optimizer.betas=[0.9,1.5]", "trainer.max_epochs=null", "+optimizer.lrr=0.1"]
    with pytest.raises(UserError) as info:
        validate(compose(bad, output_dir=tmp_path))
    message = str(info.value)
    assert "\n" not in message
    for override in bad:
        assert override.lstrip("+").split("=")[0] + "=" in message, override
    assert "data.augment.brightness=abc: must be a number in [0, 1]" in message
    assert "optimizer.lrr=0.1: is not a key of optimizer (torch.optim.Adam); did you mean optimizer.lr?" in message


def _cli(*overrides: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "dlhw.cli.train", *overrides, "debug=fast", f"hydra.run.dir={cwd / 'run'}"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_an_interpolation_that_cannot_be_resolved_is_named(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DLHW_NO_SUCH_VARIABLE", raising=False)
    problems = check(compose(["data.root=${oc.env:DLHW_NO_SUCH_VARIABLE}", "data=mnist"], output_dir=tmp_path))
    assert [p.key for p in problems] == ["data.root"]
    assert problems[0].line.startswith("data.root=${oc.env:DLHW_NO_SUCH_VARIABLE}: cannot be resolved (")


def test_an_entry_without_target_is_off(tmp_path) -> None:
    """temporal_order_spikes tunes callbacks.spikes; with callbacks=none that entry has no _target_
    and is not built (dlhw.run.build), so it is not checked either."""
    assert check(compose(["experiment=temporal_order_spikes", "callbacks=none"], output_dir=tmp_path)) == []


CLI_CASES = [
    (["data.augment.brightness=abc"], ["data.augment.brightness=abc: must be a number in [0, 1]"]),
    (["data.augment.blur=yes", "data.augment.brightness=-1", "data.normalize=foo", "model.width=0"],
     ["data.augment.blur=yes: must be a number >= 0", "data.augment.brightness=-1: must be",
      "data.normalize=foo: must be one of standard, mean, none", "model.width=0: must be a number > 0"]),
]


def test_the_cli_ends_in_one_error_line_and_exit_2(tmp_path) -> None:
    """The issue's examples through dlhw-train (debug=fast): exit 2, one dlhw: error: line listing
    every wrong value, no traceback, nothing built. The runs start together (they mostly import)."""
    procs = []
    for i, (overrides, _) in enumerate(CLI_CASES):
        (tmp_path / str(i)).mkdir()
        procs.append(_cli(*overrides, cwd=tmp_path / str(i)))
    for i, (proc, (_, expected)) in enumerate(zip(procs, CLI_CASES, strict=True)):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, err
        assert "Traceback" not in err and "Error executing job" not in err
        lines = [line for line in err.splitlines() if line.startswith("dlhw: error:")]
        assert len(lines) == 1, err
        for text in expected:
            assert text in lines[0], lines[0]
        assert not (tmp_path / str(i) / "run" / "checkpoints").exists()  # refused before building


# ----------------------------------------------------------------------------- what people read
def test_the_key_table_has_every_key_of_every_option(shipped) -> None:
    """docs/compatibility.md's key table (tests/test_matrix.py checks the file is up to date)."""
    from dlhw.config.schema.base import _nested
    from dlhw.config.schema.table import key_table

    table = key_table()
    rows = {line.split("|")[1].strip().strip("`") for line in table.splitlines() if line.startswith("| `")}
    for name, tree in shipped.items():
        for prefix, schema, _ in sections(Train, tree):
            for key, kind in schema.types().items():
                if not key.startswith("_") and _nested(kind) is None:  # a section's keys are rows
                    assert f"{prefix}{key}" in rows, f"{name}: {prefix}{key} is not in the key table"
    assert "| `data.augment.brightness` | all | a number in [0, 1] | `0.0` |" in table


def test_help_lists_the_keys_of_the_chosen_options(tmp_path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "dlhw.cli.train", "model=rnn", "--help"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    keys = proc.stdout.split("== Keys ==", 1)[1].split("== Config ==", 1)[0]
    lines = [line.split() for line in keys.splitlines() if line.startswith("  ")]
    shown = {parts[0].split("=", 1)[0] for parts in lines}
    assert {"seed", "data.batch_size", "data.augment.blur", "model.cell", "optimizer.lr",
            "trainer.max_epochs", "callbacks.spikes.factor"} <= shown
    assert "model.width" not in shown  # lenet's, not chosen
    assert any(line.startswith("  model.cell=lstm") and "one of lstm, gru, rnn, gated;" in line
               for line in keys.splitlines())


# ----------------------------------------------------------------------------- the schema itself
def test_every_option_class_is_a_registered_target_with_typed_described_keys() -> None:
    assert len(TARGETS) > 40
    for target, schema in TARGETS.items():
        assert issubclass(schema, BaseModel) and not issubclass(schema, Collection)
        for key, field in schema.keys().items():
            assert field.description, f"{schema.__name__}.{key} ({target}) has no description"
            assert type_of(field) is not None


def test_choices_match_the_code() -> None:
    """The schema lists the choices the constructors accept (kept apart so that reading the schema
    does not load torch)."""
    from dlhw.config.schema import data, models, training
    from dlhw.data.datamodule import LOADERS, NORMALIZE
    from dlhw.data.sequences import LEVELS
    from dlhw.models.layers import IMPLS
    from dlhw.models.rnn import CELLS, HEADS
    from dlhw.models.vgg import PLANS
    from dlhw.nn import IMPLS as NN_IMPLS
    from dlhw.nn.init import SCHEMES

    assert data.LOADERS == tuple(LOADERS) and data.NORMALIZE == tuple(NORMALIZE)
    assert data.LEVELS == tuple(LEVELS)
    assert models.IMPLS == tuple(IMPLS) and models.CELLS == tuple(CELLS) and models.HEADS == tuple(HEADS)
    assert models.PLANS == tuple(PLANS)
    assert training.SCHEMES == tuple(SCHEMES)
    assert training.IMPLS == tuple(NN_IMPLS)  # loss.impl, as model.impl
