"""``ModelSpec``: what a zoo model is, as data (name, task, inputs, the preprocessing it expects, input
shape, learned or rule, parameter count, citation, the points where it departs from its paper, and the
paper's training recipe), readable without building the model or importing torch.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from strokedata.manifest import Modality

TaskName = Literal["occlusion", "recanalization", "core", "clot-regions"]
Kind = Literal["learned", "rule"]
Sample = Literal["volume", "slice", "patch"]
Loss = Literal["weighted-cross-entropy", "cross-entropy", "weighted-bce", "bce", "generalized-dice"]
"""What one network input is: a patient's whole volume (C, X, Y, Z), one axial slice (C, X, Y) of it, or
a patch of a 4D series (C, X, Y, T) around the pixels it classifies."""
MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Recipe(BaseModel):
    """A model's training recipe: the paper's, as the defaults of ``strokebench train``."""

    model_config = _STRICT

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    schedule: Literal["cosine", "constant"] = "cosine"
    epochs: Annotated[int, Field(ge=1)] = 45
    batch_size: Annotated[int, Field(ge=1)] = 4
    loss: Loss = Field(
        default="weighted-cross-entropy",
        description="cross-entropy over classes (weighted: by the class weights); binary cross-entropy per "
        "output (weighted: the positive class by positive_weight, or by the class weights' ratio for one "
        "output); or the generalised Dice loss of a segmentation (Sudre et al. 2017)",
    )
    positive_weight: Annotated[float, Field(gt=0)] | None = Field(
        default=None,
        description="the weight of a positive label in a weighted binary cross-entropy over several "
        "outputs (clot-regions); None: from the class weights",
    )
    samples_per_epoch: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="patches drawn per epoch (patch models); None: not a patch model"
    )
    attention_stride: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="pixels between the centres of the patches a patch model maps a slice with (2: each "
        "patch gives its central 2 x 2 pixels, as de Vries et al.); None: not a patch model or stage",
    )
    class_weight_mu: Annotated[float, Field(gt=0)] = Field(
        default=0.15,
        description="mu of the log-smoothed inverse-frequency class weights max(1, ln(mu N / n_c)) that "
        "weight the loss and the sampler (strokedata.sampling.class_weights)",
    )
    weighted_sampler: bool = Field(default=True, description="draw training samples by class weight")
    augment: list[Literal["flip-y", "flip-z", "rotate-z"]] = Field(
        default_factory=list, description="augmentation on the cached tensors, seeded per epoch"
    )
    head_epochs: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="epochs that train the output head alone, the rest frozen, before every weight trains "
        "at learning_rate x fine_tune_factor (the AMI-Net report's transfer learning); 0: all from the start",
    )
    fine_tune_factor: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.1, description="the learning rate's factor once the head epochs are over"
    )
    patience: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="stop after this many epochs without a better validation metric (early "
        "stopping); None: train every epoch",
    )
    select_by: str | None = Field(
        default=None, description="validation metric choosing the best epoch; None: the task's primary"
    )


class ModelSpec(BaseModel):
    """A zoo model as data: enough to list it, check its inputs and train or run it."""

    model_config = _STRICT

    name: Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN)]
    task: TaskName
    kind: Kind
    summary: Annotated[str, StringConstraints(min_length=1)] = Field(description="one line: what it is")
    inputs: list[Modality] = Field(description="the images it reads, in channel order")
    pipeline: str = Field(
        description="the preprocessing pipeline its dataset must have been through ('none': the canonical "
        "dataset as it is)"
    )
    input_shape: tuple[int, ...] = Field(
        default=(),
        description="(channels, x, y, z) at the paper's size; `train --input-size` may change x, y, z; "
        "empty for a rule, which reads the images as they are",
    )
    parameters: Annotated[int, Field(ge=0)] = Field(description="learned parameters (0 for a rule)")
    citation: Annotated[str, StringConstraints(min_length=1)]
    departures: list[str] = Field(
        default_factory=list, description="where this implementation departs from its paper, and why"
    )
    recipe: Recipe = Field(default_factory=Recipe)
    sample: Sample = Field(
        default="volume",
        description="what one input of input_shape is: a patient's volume, one axial slice (C, X, Y), or "
        "a patch of the 4D series (C, X, Y, T)",
    )
    stage_of: str | None = Field(
        default=None,
        description="the model whose trained run computes part of this one's input (a second stage: "
        "`train --stage1 RUN`); None: it reads the images alone",
    )

    def at_size(self, size: tuple[int, ...] | None) -> ModelSpec:
        """Return the spec with the input's spatial size ``size`` ((x, y, z); a slice model takes x, y),
        for networks built for one size (fully connected or attention layers sized by the input)."""
        if size is None or self.kind == "rule" or self.sample == "patch" or self.stage_of is not None:
            return self
        spatial = tuple(size[:2]) if self.sample == "slice" else tuple(size)
        return self.model_copy(update={"input_shape": (self.input_shape[0], *spatial)})

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        dimensions = {"volume": 4, "slice": 3, "patch": 4}[self.sample]
        # a patch model adds the mirrored copies, a second stage its first stage's map: no channel rule
        one_per_input = self.sample != "patch" and self.stage_of is None
        if self.kind == "learned" and (
            not self.inputs
            or len(self.input_shape) != dimensions
            or (one_per_input and self.input_shape[0] != len(self.inputs))
        ):
            raise ValueError(
                f"input_shape {self.input_shape} must be (channels, ...) of {dimensions} values for a "
                f"{self.sample} model, with one channel per input ({len(self.inputs)})"
            )
        if self.kind == "rule" and (self.parameters or self.input_shape):
            raise ValueError("a rule has no learned parameters and no input shape")
        return self
