"""The OpenPhenom conversion writer: `convert_openphenom(source, destination)` -> a native Phenom directory.

Reads the release through `modeling_phenom.openphenom` (config translation, the checked weight reader, the key map)
and writes `config.json` (PhenomConfig), `model.safetensors` (real safetensors), `preprocessor_config.json`, the
source's license file and a `README.md` stating the license: the OpenPhenom weights are licensed for non-commercial
use. It lives beside the command layer, not in `modeling_phenom`, so that `import modeling_phenom` (and every
`from_pretrained`) does not load it; its command line is `phenom convert` (`phenom/commands/convert.py`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from modeling_phenom import PhenomConfig, PhenomForMaskedImageModeling, PhenomImageProcessor, PhenomModel
from modeling_phenom.loading import check_model_source
from modeling_phenom.openphenom import (
    CONFIG_NAME,
    LICENSE_NAME,
    LICENSE_NAMES,
    load_openphenom_state_dict,
    resolve_openphenom_file,
    translate_openphenom_config,
)
from phenom_data.atomic import atomic_directory


def _license_statement(source: str, license_file: str | None) -> str:
    kept = (
        f"The license file of the source was copied to `{license_file}`."
        if license_file
        else "The source had no license file; check the license of the weights you converted."
    )
    return (
        "---\nlicense: other\n"
        f"license_name: {LICENSE_NAME.lower().replace(' ', '-')}\n"
        + (f"license_link: {license_file}\n" if license_file else "")
        + "library_name: transformers\ntags:\n- phenom\n- microscopy\n---\n\n"
        f"# Phenom conversion of `{source}`\n\n"
        f"Converted from the OpenPhenom checkpoint `{source}` by `phenom convert` (native Phenom config and "
        "safetensors; load with `import modeling_phenom` and `AutoModel.from_pretrained(<this directory>)`, or "
        "without Phenom installed with `AutoModel.from_pretrained(<this directory>, trust_remote_code=True)`, which "
        "runs the Phenom source files saved here).\n\n"
        f"**License.** OpenPhenom weights are released by Recursion under the {LICENSE_NAME}: non-commercial use "
        f"only. The conversion does not change that license. {kept}\n"
    )


def convert_openphenom(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    encoder_only: bool = False,
    overwrite: bool = False,
    **hub_kwargs,
) -> Path:
    """Convert an OpenPhenom repo or directory into a native Phenom directory, losslessly.

    Writes `config.json` (PhenomConfig), `model.safetensors` (real safetensors: the encoder + decoder, or the encoder
    only), `preprocessor_config.json`, the source's license file and a `README.md` stating the license. The directory
    is assembled under a temporary name beside `destination` and put in its place (`phenom_data.atomic`).
    """
    destination = Path(destination)
    if destination.exists() and not overwrite:
        raise FileExistsError(f"{destination} exists; pass overwrite=True (--overwrite) to replace it")
    if destination.exists() and not destination.is_dir():
        raise FileExistsError(f"destination {destination} is a file; the converted model is a folder")
    check_model_source(source, what="source")
    config_path = resolve_openphenom_file(source, CONFIG_NAME, **hub_kwargs)
    hub_config = json.loads(config_path.read_text())
    config = PhenomConfig(**translate_openphenom_config(hub_config))
    model_class = PhenomModel if encoder_only else PhenomForMaskedImageModeling
    state_dict = load_openphenom_state_dict(model_class, source, config, **hub_kwargs)
    model = model_class.from_pretrained(None, config=config, state_dict=state_dict)
    with atomic_directory(destination) as staging:  # a failed conversion leaves no staging and the old folder
        model.save_pretrained(staging)
        PhenomImageProcessor.from_config(config).save_pretrained(staging)
        license_file = None
        for name in LICENSE_NAMES:
            path = resolve_openphenom_file(source, name, required=False, **hub_kwargs)
            if path is not None:
                shutil.copyfile(path, staging / name)
                license_file = name
                break
        (staging / "README.md").write_text(_license_statement(str(source), license_file))
    return destination


__all__ = ["convert_openphenom"]
