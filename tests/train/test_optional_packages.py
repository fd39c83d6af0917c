"""A missing optional package is one line naming the extra that installs it (exit 2), found
before the work where the command line can tell, never a traceback.

Each test hides one package the way a machine without it looks to Python
(``sys.modules[name] = None``: ``import name`` fails, ``find_spec`` finds nothing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from accelat_train.cli import main

TINY = [
    "--dataset", "digits", "--eps", "0.1", "--batch-size", "40", "--train-size", "200",
    "--val-size", "40", "--monitor-size", "40", "--monitor-steps", "2", "--eval-size", "40",
    "--eval-steps", "2", "--device", "cpu", "--quiet", "--policy", "step", "--lr-max", "0.05",
    "--epochs", "1",
]  # fmt: skip


def _hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``accelat ARGV`` in this process: its exit code and its stderr."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("hidden", "flags", "says"),
    [
        (("tensorboard",), ["--log", "tensorboard"],
         "the tensorboard logger needs the tensorboard package: "
         "pip install 'accelat[tensorboard]'"),
        (("wandb",), ["--log", "csv,wandb"],
         "the wandb logger needs the wandb package: pip install 'accelat[wandb]'"),
        (("schedulefree",), ["--optimizer", "schedulefree"],
         "--optimizer schedulefree needs the schedulefree package: pip install 'accelat[peers]'"),
        (("prodigyopt",), ["--policy", "prodigy"],
         "--policy prodigy needs the prodigyopt package: pip install 'accelat[peers]'"),
        (("art",), ["--attacks", "linfpgd,apgd-ce"],
         "--attacks apgd-ce needs the adversarial-robustness-toolbox package: "
         "pip install 'accelat[eval]'"),
        (("foolbox",), ["--method", "foolbox-fgsm"],
         "--method foolbox-fgsm needs the foolbox package: pip install 'accelat[train]'"),
    ],
)  # fmt: skip
def test_a_missing_package_is_one_line_naming_the_extra_before_any_training(
    hidden, flags, says, tmp_path, monkeypatch, capsys
):
    _hide(monkeypatch, *hidden)
    out = tmp_path / "run"
    code, err = _run(["train", *TINY, *flags, "--out", str(out)], capsys)
    assert code == 2
    assert err == f"accelat train: error: {says}\n"
    assert not (out / "metrics.jsonl").exists() and not (out / "lr_find.png").exists()


def test_a_yaml_config_without_pyyaml_names_the_extra(tmp_path, monkeypatch, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 2\n")
    _hide(monkeypatch, "yaml")
    code, err = _run(["train", "--config", str(config), "--out", str(tmp_path / "r")], capsys)
    assert code == 2
    assert err.endswith(
        f"error: --config {config} (YAML) needs the pyyaml package: pip install 'accelat[train]'\n"
    )
    assert "Traceback" not in err


def test_eval_with_an_attack_whose_package_is_missing_names_the_extra(
    tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    capsys.readouterr()
    _hide(monkeypatch, "art")
    code, err = _run(["eval", "--checkpoint", str(run), "--attacks", "apgd-ce"], capsys)
    assert code == 2
    assert err == (
        "accelat eval: error: --attacks apgd-ce needs the adversarial-robustness-toolbox "
        "package: pip install 'accelat[eval]'\n"
    )


def test_the_library_raises_an_import_error_naming_the_extra(monkeypatch):
    from accelat_train.callbacks.loggers import make_loggers

    _hide(monkeypatch, "tensorboard")
    with pytest.raises(ImportError, match=r"pip install 'accelat\[tensorboard\]'"):
        make_loggers(["tensorboard"], "runs/x")


def test_needs_extra_lets_other_import_errors_through():
    from accelat_train.extras import MissingExtra, needs_extra

    with pytest.raises(ImportError) as caught, needs_extra("something"):
        import accelat_train.no_such_module  # noqa: F401
    assert not isinstance(caught.value, MissingExtra)


def test_every_extra_named_is_one_pyproject_declares():
    import tomllib

    from accelat_train.extras import EXTRAS

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    for module, (package, extra) in EXTRAS.items():
        assert any(spec.startswith(package) for spec in extras[extra]), (module, extra)


def test_require_checks_without_importing(monkeypatch):
    from accelat_train.extras import MissingExtra, require

    require(("wandb", "tensorboard"), "it")  # installed in the test environment: no error
    _hide(monkeypatch, "wandb")
    with pytest.raises(MissingExtra, match=r"^it needs the wandb package: pip install"):
        require(("tensorboard", "wandb"), "it")
