"""Phenom: Hugging Face implementation of Recursion's channel-agnostic microscopy MAEs ("ViTally Consistent").

`import modeling_phenom` registers `PhenomConfig` (model_type ``phenom``), `PhenomModel` (AutoModel),
`PhenomForMaskedImageModeling` (AutoModelForMaskedImageModeling, AutoModelForPreTraining) and `PhenomImageProcessor`
with the transformers Auto classes, and the legacy model_type ``"MAE"`` of the released
`recursionpharma/OpenPhenom` checkpoint (`convert_openphenom`), so that
`AutoModel.from_pretrained("recursionpharma/OpenPhenom")` loads it without remote code.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForMaskedImageModeling,
    AutoModelForPreTraining,
)

from .configuration_phenom import PRESETS, PhenomConfig
from .convert_openphenom import OpenPhenomConfig, OpenPhenomForMaskedImageModeling, OpenPhenomModel
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

# The released OpenPhenom checkpoint: thin subclasses, since one config class cannot carry two model types.
AutoConfig.register(OpenPhenomConfig.model_type, OpenPhenomConfig, exist_ok=True)
AutoModel.register(OpenPhenomConfig, OpenPhenomModel, exist_ok=True)
AutoModelForMaskedImageModeling.register(OpenPhenomConfig, OpenPhenomForMaskedImageModeling, exist_ok=True)
AutoModelForPreTraining.register(OpenPhenomConfig, OpenPhenomForMaskedImageModeling, exist_ok=True)

__all__ = [
    "PRESETS",
    "OpenPhenomConfig",
    "OpenPhenomForMaskedImageModeling",
    "OpenPhenomModel",
    "PhenomConfig",
    "PhenomForMaskedImageModeling",
    "PhenomForMaskedImageModelingOutput",
    "PhenomImageProcessor",
    "PhenomModel",
    "PhenomModelOutput",
    "PhenomPreTrainedModel",
]
