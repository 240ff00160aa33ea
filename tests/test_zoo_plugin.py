"""A third-party model plugs in through the entry point group strokemodels.models, without touching our
code: a tiny distribution on the path is listed, keeps the contract, trains for one epoch, predicts and
is scored."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from strokedata.splits import make_split, write_split
from tests.builders import build_dataset

ROOT = Path(__file__).parent.parent
PLUGIN = """
from strokedata.manifest import Modality
from strokemodels.registry import register_model
from strokemodels.spec import ModelSpec, Recipe


@register_model(
    ModelSpec(
        name="demo-pooling",
        task="occlusion",
        kind="learned",
        summary="the mean of two maps through a linear layer",
        inputs=[Modality.CBF, Modality.TMAX],
        pipeline="none",
        input_shape=(2, 12, 12, 6),
        parameters=9,
        citation="a plugin test",
        recipe=Recipe(epochs=1, batch_size=2, augment=[]),
    )
)
def build(spec, seed):
    import torch
    from torch import nn

    class MeanLinear(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 3)

        def forward(self, x):
            return self.linear(x.mean(dim=(2, 3, 4)))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MeanLinear()
"""
SCRIPT = """
import sys
from typer.testing import CliRunner
from cli.strokebench_app import app
from strokemodels.testing import model_checks

data, split, folder = sys.argv[1:4]
runner = CliRunner()
listed = runner.invoke(app, ["models", "--task", "occlusion"], env={"COLUMNS": "200"})
assert "demo-pooling" in listed.output, listed.output
for name, check in model_checks(["demo-pooling"]):
    check(name)
common = ["--dataset", data, "--split", split]
steps = [
    ["train", "--task", "occlusion", "--model", "demo-pooling", *common, "--fold", "0",
     "--out", folder + "/run", "--cache", folder + "/cache", "--device", "cpu", "-j", "1"],
    ["predict", "--run", folder + "/run", *common, "--partition", "test", "--out", folder + "/p.csv",
     "--cache", folder + "/cache"],
    ["score", folder + "/p.csv", "--task", "occlusion", *common, "--partition", "test", "--bootstrap", "10"],
]
for arguments in steps:
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, (arguments[0], result.output)
print("plugin trained, predicted and scored")
"""


def test_a_plugin_model_is_listed_trained_and_scored_through_its_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    package = site / "sb_demo_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(textwrap.dedent(PLUGIN))
    metadata = site / "sb_demo_plugin-0.1.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: sb-demo-plugin\nVersion: 0.1\n")
    (metadata / "entry_points.txt").write_text("[strokemodels.models]\ndemo = sb_demo_plugin.models\n")
    data = build_dataset(tmp_path / "data", n_patients=12)
    split, _ = make_split(data, ["occlusion"], test_size=0.25, folds=2, seed=0, missing="exclude", jobs=1)
    write_split(split, tmp_path / "split.json")
    environment = {"PYTHONPATH": f"{site}:{ROOT}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data), str(tmp_path / "split.json"), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plugin trained, predicted and scored" in done.stdout
