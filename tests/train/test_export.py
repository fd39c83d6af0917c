"""The exported model against the run's own: in a fresh Python that cannot import accelat,
``torch.export.load`` gives a model whose clean accuracy on the run's test images equals
``load_run(...).model``'s exactly, for the best and the last (averaged) weights; BatchNorm
networks are exported in eval mode; the note says what an evaluator needs."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from accelat_train import TrainConfig, load_run, train
from accelat_train.checkpoint import CheckpointError
from accelat_train.export import NOTE_NAME, export_run

pytestmark = pytest.mark.slow

torch.set_num_threads(1)

#: Run in a fresh interpreter (-I: no PYTHONPATH, no user site, no cwd on the path) from a
#: folder outside the repository; an import hook refuses accelat, so that any use of it fails.
LOAD_WITHOUT_ACCELAT = r"""
import importlib.abc, json, sys

class NoAccelat(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0].startswith("accelat"):
            raise ImportError(f"{name} must not be needed to load an exported model")

sys.meta_path.insert(0, NoAccelat())
import torch

images = torch.load(sys.argv[1])
found = {}
for path in sys.argv[2:]:
    note = {"accelat.json": ""}
    model = torch.export.load(path, extra_files=note).module()
    with torch.no_grad():
        correct = (model(images["x"]).argmax(1) == images["y"]).sum().item()
    found[path] = {"correct": correct, "note": json.loads(note["accelat.json"])}
assert not [m for m in sys.modules if m.startswith("accelat")]
print(json.dumps(found))
"""


def _cfg(tmp_path, **kw) -> TrainConfig:
    base = TrainConfig(
        dataset="digits", eps=0.1, batch_size=40, train_size=200, val_size=40, monitor_size=40,
        monitor_steps=2, eval_size=40, eval_steps=2, device="cpu", policy="accelat", window=1,
        lr_max=0.05, epochs=2, out=str(tmp_path / "run"),
    )  # fmt: skip
    return dataclasses.replace(base, **kw)


def _load_elsewhere(tmp_path, images, paths):
    """``LOAD_WITHOUT_ACCELAT`` on ``paths``: each file's correct count and note."""
    images_pt = tmp_path / "images.pt"
    torch.save({"x": images[0], "y": images[1]}, images_pt)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    cmd = [sys.executable, "-I", "-c", LOAD_WITHOUT_ACCELAT, str(images_pt), *map(str, paths)]
    done = subprocess.run(cmd, cwd=outside, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_the_exported_model_loads_without_accelat_and_scores_as_the_run(tmp_path):
    run_dir = train(_cfg(tmp_path, ema_epochs=1.0), quiet=True)
    paths = {w: export_run(run_dir, tmp_path / f"{w}.pt2", which=w) for w in ("best", "last")}
    images = load_run(run_dir).test_data()
    found = _load_elsewhere(tmp_path, images, paths.values())
    report = json.loads((run_dir / "report.json").read_text())
    for which, path in paths.items():
        run = load_run(run_dir, which)
        with torch.no_grad():
            want = (run.model(images[0]).argmax(1) == images[1]).sum().item()
        got = found[str(path)]
        assert got["correct"] == want, which
        note = got["note"]
        assert note == json.loads(path.with_suffix(".json").read_text())
        assert note["input"]["shape"] == ["N", 1, 8, 8]
        assert note["input"]["range"] == [0.0, 1.0]
        assert note["classes"] == [str(c) for c in run.splits.classes]
        assert note["eps"] == 0.1 and note["weights"]["averaged"] is True
        assert note["config"] == run.config
        tested = report["final"] if which == "last" else report["best"]["test"]
        assert note["test"]["clean_acc"] == tested["clean_acc"]
        assert note["test"]["robust_acc"] == tested["robust_acc"]


def test_an_exported_batchnorm_network_is_in_eval_mode(tmp_path):
    run_dir = train(_cfg(tmp_path, model="resnet20", epochs=1), quiet=True)
    path = export_run(run_dir, tmp_path / "resnet20.pt2", which="last")
    model = torch.export.load(path).module()
    x, _ = load_run(run_dir).test_data()
    with torch.no_grad():
        alone = torch.cat([model(x[i : i + 1]) for i in range(4)])
        together = model(x[:4])  # batch statistics would make these depend on the batch
        want = load_run(run_dir, "last").model(x[:4])
    torch.testing.assert_close(alone, together)
    torch.testing.assert_close(together, want)
    extra = {NOTE_NAME: ""}
    torch.export.load(path, extra_files=extra)
    assert json.loads(extra[NOTE_NAME])["config"]["model"] == "resnet20"


def test_export_names_a_missing_checkpoint_and_a_bad_which(tmp_path):
    with pytest.raises(ValueError, match="which must be one of last, best, got 'first'"):
        export_run(tmp_path, tmp_path / "m.pt2", which="first")
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        export_run(tmp_path, tmp_path / "m.pt2")


def test_the_loaded_program_refuses_eval_and_the_readmes_way_round_keeps_its_outputs(tmp_path):
    """What the README says about ``torch.export.load(...).module().eval()``, in torch."""
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    net[1].running_mean.fill_(0.5)  # eval-mode BatchNorm differs from batch statistics
    net.eval()
    x = torch.rand(2, 1, 5, 5)
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (x,)), path)
    model = torch.export.load(path).module()
    with pytest.raises(NotImplementedError, match=r"Calling eval\(\) is not supported yet"):
        model.eval()
    with pytest.raises(NotImplementedError, match=r"Calling train\(\) is not supported yet"):
        model.train()
    del model.train, model.eval
    model.eval()
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x))
