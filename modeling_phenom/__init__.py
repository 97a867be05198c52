"""Phenom: Hugging Face implementation of Recursion's channel-agnostic microscopy MAEs ("ViTally Consistent").

`import modeling_phenom` registers `PhenomConfig` (model_type ``phenom``), `PhenomModel` (AutoModel),
`PhenomForMaskedImageModeling` (AutoModelForMaskedImageModeling, AutoModelForPreTraining) and `PhenomImageProcessor`
with the transformers Auto classes.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForMaskedImageModeling,
    AutoModelForPreTraining,
)

from .configuration_phenom import PRESETS, PhenomConfig
from .image_processing_phenom import PhenomImageProcessor
from .modeling_phenom import (
    PhenomForMaskedImageModeling,
    PhenomForMaskedImageModelingOutput,
    PhenomModel,
    PhenomModelOutput,
    PhenomPreTrainedModel,
)

AutoConfig.register(PhenomConfig.model_type, PhenomConfig, exist_ok=True)
AutoModel.register(PhenomConfig, PhenomModel, exist_ok=True)
AutoModelForMaskedImageModeling.register(PhenomConfig, PhenomForMaskedImageModeling, exist_ok=True)
AutoModelForPreTraining.register(PhenomConfig, PhenomForMaskedImageModeling, exist_ok=True)
AutoImageProcessor.register(PhenomConfig, image_processor_classes={"pil": PhenomImageProcessor}, exist_ok=True)

__all__ = [
    "PRESETS",
    "PhenomConfig",
    "PhenomForMaskedImageModeling",
    "PhenomForMaskedImageModelingOutput",
    "PhenomImageProcessor",
    "PhenomModel",
    "PhenomModelOutput",
    "PhenomPreTrainedModel",
]
