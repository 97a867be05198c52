"""Phenom: Hugging Face implementation of Recursion's channel-agnostic microscopy MAEs ("ViTally Consistent").

`import modeling_phenom` registers `PhenomConfig` (model_type ``phenom``), `PhenomModel` (AutoModel),
`PhenomForMaskedImageModeling` (AutoModelForMaskedImageModeling, AutoModelForPreTraining) and `PhenomImageProcessor`
with the transformers Auto classes, Phenom's `image-feature-extraction` pipeline (`pipeline_phenom`; other models
keep transformers' own) and the legacy model_type ``"MAE"`` of the released `recursionpharma/OpenPhenom` checkpoint
(`openphenom`), so that `AutoModel.from_pretrained("recursionpharma/OpenPhenom")` loads it without remote
code. Where Phenom is not installed, a directory it saved loads with `trust_remote_code=True` (`modeling_phenom.py`).
"""

import logging

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForMaskedImageModeling,
    AutoModelForPreTraining,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_phenom import PRESETS, PhenomConfig
from .image_processing_phenom import PhenomImageProcessor
from .modeling_phenom import (
    PhenomForMaskedImageModeling,
    PhenomForMaskedImageModelingOutput,
    PhenomModel,
    PhenomModelOutput,
    PhenomPreTrainedModel,
)
from .openphenom import OpenPhenomConfig, OpenPhenomForMaskedImageModeling, OpenPhenomModel
from .pipeline_phenom import PIPELINE_TASK, PhenomImageFeatureExtractionPipeline

AutoConfig.register(PhenomConfig.model_type, PhenomConfig, exist_ok=True)
AutoModel.register(PhenomConfig, PhenomModel, exist_ok=True)
AutoModelForMaskedImageModeling.register(PhenomConfig, PhenomForMaskedImageModeling, exist_ok=True)
AutoModelForPreTraining.register(PhenomConfig, PhenomForMaskedImageModeling, exist_ok=True)
AutoImageProcessor.register(PhenomConfig, image_processor_classes={"pil": PhenomImageProcessor}, exist_ok=True)

# The released OpenPhenom checkpoint: thin subclasses, since one config class cannot carry two model types.
AutoConfig.register(OpenPhenomConfig.model_type, OpenPhenomConfig, exist_ok=True)
AutoModel.register(OpenPhenomConfig, OpenPhenomModel, exist_ok=True)
AutoModelForMaskedImageModeling.register(OpenPhenomConfig, OpenPhenomForMaskedImageModeling, exist_ok=True)
AutoModelForPreTraining.register(OpenPhenomConfig, OpenPhenomForMaskedImageModeling, exist_ok=True)


def _register_pipeline() -> None:
    """Phenom's pipeline for the task, keeping transformers' entry otherwise (its default model and model class)."""
    builtin = PIPELINE_REGISTRY.supported_tasks[PIPELINE_TASK]
    registry_logger = logging.getLogger(PIPELINE_REGISTRY.__module__)
    level = registry_logger.level
    registry_logger.setLevel(logging.ERROR)  # "Overwriting pipeline for task ...": on purpose, other models unchanged
    try:
        PIPELINE_REGISTRY.register_pipeline(
            PIPELINE_TASK, pipeline_class=PhenomImageFeatureExtractionPipeline, pt_model=builtin["pt"],
            default=builtin.get("default"), type=builtin.get("type"),
        )
    finally:
        registry_logger.setLevel(level)


_register_pipeline()

__all__ = [
    "PRESETS",
    "OpenPhenomConfig",
    "OpenPhenomForMaskedImageModeling",
    "OpenPhenomModel",
    "PhenomConfig",
    "PhenomForMaskedImageModeling",
    "PhenomForMaskedImageModelingOutput",
    "PhenomImageFeatureExtractionPipeline",
    "PhenomImageProcessor",
    "PhenomModel",
    "PhenomModelOutput",
    "PhenomPreTrainedModel",
]
