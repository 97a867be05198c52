"""`pipeline("image-feature-extraction")` for Phenom models: one embedding per well of multi-channel microscopy.

transformers' own image-feature-extraction pipeline reads one RGB image per input, so a 6-channel well fails in its
image loading. This pipeline hands each well to the model's `PhenomImageProcessor` (the one owner of tiling: a
512 px well becomes its four 256 px tiles), embeds every view, and returns the well embedding: the mean over the
well's views of `pooler_output` (the mean of the patch tokens, CLS excluded), the well embedding of
`reference/openphenom.md`'s `predict` and of the published RxRx3-core embeddings.

`import modeling_phenom` registers this class for the task (`PIPELINE_REGISTRY`); a directory saved by Phenom also
names it in `config.json` (`custom_pipelines`), so `pipeline(..., trust_remote_code=True)` finds it where Phenom is
not installed. Models that are not Phenom models get transformers' own pipeline, unchanged.
"""

from __future__ import annotations

import torch
from transformers import ImageFeatureExtractionPipeline

from .configuration_phenom import PhenomConfig, code_reference
from .image_processing_phenom import PhenomImageProcessor

PIPELINE_TASK = "image-feature-extraction"


def is_phenom_model(model) -> bool:
    """Whether `model` is a Phenom model: its config is a `PhenomConfig` (OpenPhenom's legacy config included) or
    has its model type (a class loaded from a Hub copy of this package is a different class object)."""
    config = getattr(model, "config", None)
    return isinstance(config, PhenomConfig) or getattr(config, "model_type", None) == PhenomConfig.model_type


class PhenomImageFeatureExtractionPipeline(ImageFeatureExtractionPipeline):
    r"""
    Well embeddings from a Phenom model.

    ```python
    >>> import numpy as np
    >>> from transformers import pipeline
    >>> import modeling_phenom  # registers this pipeline (or pass trust_remote_code=True without Phenom installed)
    >>> extractor = pipeline("image-feature-extraction", model="path/to/phenom-model")  # doctest: +SKIP
    >>> well = np.random.default_rng(0).integers(0, 256, (6, 512, 512), dtype=np.uint8)
    >>> extractor(well, return_tensors=True).shape  # doctest: +SKIP
    torch.Size([384])
    ```

    Inputs (`__call__`): one well, or a list of wells (a list of outputs comes back). A well is anything
    `PhenomImageProcessor` takes as one well: a `[C, H, W]` numpy array or tensor (uint8, or uint16 converted by the
    processor's 16-bit rule), a list of `C` per-channel images (file paths, 2-D arrays, single-band PIL images) or a
    dict `{channel name: image}`; a `[N, C, H, W]` array is `N` wells.

    Args (per call, as transformers' pipeline has them):
        pool (`bool`, defaults to `True`): `True` returns the well embedding, float32 `[hidden_size]`: the mean over
            the well's views of `pooler_output`. `False` returns the views' raw hidden states, `[num_views,
            1 + C * tokens_per_channel, hidden_size]` (CLS first, channel-major tokens), one row per view in the
            processor's tile order. (transformers' default is `False`; a well embedding is what Phenom is for.)
        return_tensors (`bool`, defaults to `False`): a `torch.Tensor` instead of nested lists of floats.
        image_processor_kwargs (`dict`): passed to the processor, e.g. `{"mode": "tiles"}`.

    A well is already a batch (its views), so `batch_size` must be 1.
    """

    # pipeline() would otherwise look for a video processor, and transformers reads an image processor's `auto_map`
    # as a video processor's: where Phenom is installed it asked whether to run `PhenomVideoProcessor` remote code.
    _load_video_processor = False

    def __new__(cls, model=None, *args, **kwargs):
        # `import modeling_phenom` registers this class for the whole task; every other model keeps transformers'
        # own pipeline, exactly as without Phenom.
        if not is_phenom_model(model):
            return ImageFeatureExtractionPipeline(model, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, *args, image_processor=None, **kwargs):
        # Built without a processor: the RxRx defaults (256 px views), as `phenom embed` uses for a model without one.
        image_processor = image_processor if image_processor is not None else PhenomImageProcessor()
        super().__init__(*args, image_processor=image_processor, **kwargs)

    def _sanitize_parameters(self, image_processor_kwargs=None, return_tensors=None, pool=None, **kwargs):
        postprocess_params = {}
        if pool is not None:
            postprocess_params["pool"] = pool
        if return_tensors is not None:
            postprocess_params["return_tensors"] = return_tensors
        return dict(image_processor_kwargs or {}), {}, postprocess_params

    def __call__(self, inputs, **kwargs):
        batch_size = kwargs.get("batch_size") or self._batch_size
        if batch_size not in (None, 1):
            raise ValueError(
                f"batch_size={batch_size}: the Phenom pipeline embeds one well at a time (a well is already a batch "
                "of its views); leave batch_size at 1"
            )
        wells = self.image_processor.split_wells(inputs)
        outputs = super().__call__(list(wells), **kwargs)
        return outputs[0] if len(wells) == 1 and wells[0] is inputs else outputs

    def preprocess(self, well, **image_processor_kwargs) -> dict[str, torch.Tensor]:
        """One well -> `{"pixel_values": uint8 [num_views, C, crop_size, crop_size]}` (the model's canonical input:
        no cast to the pipeline's dtype, the model standardizes each view and channel itself)."""
        return dict(self.image_processor(well, return_tensors="pt", **image_processor_kwargs))

    def _forward(self, model_inputs):
        return self.model(pixel_values=model_inputs["pixel_values"])

    def postprocess(self, model_outputs, pool=None, return_tensors=False):
        pool = True if pool is None else pool
        outputs = model_outputs["pooler_output"].mean(dim=0) if pool else model_outputs["last_hidden_state"]
        return outputs if return_tensors else outputs.tolist()


def custom_pipelines() -> dict:
    """The `custom_pipelines` entry of a saved `config.json` (the format transformers' `Pipeline.save_pretrained`
    writes): `pipeline(task, model=dir, trust_remote_code=True)` loads this class from the directory."""
    return {PIPELINE_TASK: {"impl": code_reference(PhenomImageFeatureExtractionPipeline), "pt": ["AutoModel"],
                            "type": "image"}}


__all__ = ["PIPELINE_TASK", "PhenomImageFeatureExtractionPipeline", "custom_pipelines", "is_phenom_model"]
