"""Hub-native directories: what Phenom saves (and `phenom convert` writes) loads with `trust_remote_code=True` in an
interpreter where `modeling_phenom` cannot be imported, and reproduces the installed classes exactly; with Phenom
installed, the installed classes load it and no remote code runs."""

import builtins
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT
from openphenom_layout import hub_directory
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForMaskedImageModeling,
    AutoModelForPreTraining,
    pipeline,
)
from transformers.dynamic_module_utils import get_imports, get_relative_imports

from modeling_phenom import PhenomConfig, PhenomForMaskedImageModeling, PhenomImageProcessor
from phenom.convert_writer import convert_openphenom

CODE_FILES = ["configuration_phenom.py", "image_processing_phenom.py", "modeling_phenom.py", "pipeline_phenom.py"]
AUTO_MAP = {
    "AutoConfig": "configuration_phenom.PhenomConfig",
    "AutoModel": "modeling_phenom.PhenomModel",
    "AutoModelForMaskedImageModeling": "modeling_phenom.PhenomForMaskedImageModeling",
    "AutoModelForPreTraining": "modeling_phenom.PhenomForMaskedImageModeling",
    "AutoImageProcessor": "image_processing_phenom.PhenomImageProcessor",
}

# Runs where Phenom is not installed: `modeling_phenom` cannot be imported, only the files saved with the weights.
REMOTE_SCRIPT = """
import sys
sys.modules["modeling_phenom"] = None  # before anything else: Phenom is not installed
import json
import torch
from safetensors.torch import load_file, save_file
from transformers import (AutoConfig, AutoImageProcessor, AutoModel, AutoModelForMaskedImageModeling,
                          AutoModelForPreTraining, pipeline)

directory, inputs_file, outputs_file, resaved = sys.argv[1:]
try:
    import modeling_phenom  # noqa: F401
    raise SystemExit("modeling_phenom is importable")
except ImportError:
    pass
inputs = load_file(inputs_file)
well = inputs["well"].numpy()
loaded = {
    "config": AutoConfig.from_pretrained(directory, trust_remote_code=True),
    "processor": AutoImageProcessor.from_pretrained(directory, trust_remote_code=True),
    "encoder": AutoModel.from_pretrained(directory, trust_remote_code=True).eval(),
    "mim": AutoModelForMaskedImageModeling.from_pretrained(directory, trust_remote_code=True).eval(),
    "pretraining": AutoModelForPreTraining.from_pretrained(directory, trust_remote_code=True).eval(),
    "pipeline": pipeline("image-feature-extraction", model=directory, trust_remote_code=True),
}
pixel_values = loaded["processor"](well)["pixel_values"]
with torch.no_grad():
    encoded = loaded["encoder"](pixel_values, output_hidden_states=True)
    masked = loaded["mim"](pixel_values, noise=inputs["noise"], mask_ratio=0.75)
    pretrained = loaded["pretraining"](pixel_values, noise=inputs["noise"], mask_ratio=0.75)
loaded["mim"].save_pretrained(resaved)  # a remote-code model saves its code again
again = AutoModel.from_pretrained(resaved, trust_remote_code=True).eval()
with torch.no_grad():
    resaved_pooled = again(pixel_values).pooler_output
outputs = {
    "pixel_values": pixel_values,
    "last_hidden_state": encoded.last_hidden_state,
    "hidden_state_1": encoded.hidden_states[1],
    "pooler_output": encoded.pooler_output,
    "loss": masked.loss,
    "reconstruction": masked.reconstruction,
    "mask": masked.mask,
    "pretraining_reconstruction": pretrained.reconstruction,
    "well_embedding": loaded["pipeline"](well, return_tensors=True),
    "resaved_pooler_output": resaved_pooled,
}
save_file({name: tensor.contiguous() for name, tensor in outputs.items()}, outputs_file)
print(json.dumps({name: type(value).__module__ for name, value in loaded.items()}))
"""


def saved_model(tmp_path):
    """A tiny MAE saved by Phenom with its processor, and a 512 px well (four 256 px tiles)."""
    torch.manual_seed(0)
    directory = tmp_path / "phenom-tiny"
    PhenomForMaskedImageModeling(PhenomConfig.from_preset("tiny")).save_pretrained(directory)
    PhenomImageProcessor().save_pretrained(directory)
    return directory, 512


def converted_model(tmp_path):
    """`phenom convert` output of the tiny OpenPhenom fixture (64 px views), and a 128 px well."""
    source = hub_directory(tmp_path / "OpenPhenom", license_text="Recursion Non-Commercial End User License ...\n")
    return convert_openphenom(source, tmp_path / "converted"), 128


@pytest.mark.parametrize("make_directory", [saved_model, converted_model], ids=["save_pretrained", "phenom-convert"])
def test_remote_code_without_phenom_reproduces_the_installed_classes_exactly(make_directory, tmp_path):
    directory, size = make_directory(tmp_path)
    config = json.loads((directory / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP
    assert config["custom_pipelines"]["image-feature-extraction"]["impl"] == (
        "pipeline_phenom.PhenomImageFeatureExtractionPipeline")
    assert json.loads((directory / "preprocessor_config.json").read_text())["auto_map"] == {
        "AutoImageProcessor": AUTO_MAP["AutoImageProcessor"]}

    well = np.random.default_rng(0).integers(0, 256, (6, size, size), dtype=np.uint8)
    processor = AutoImageProcessor.from_pretrained(directory)
    encoder = AutoModel.from_pretrained(directory).eval()
    mim = AutoModelForMaskedImageModeling.from_pretrained(directory).eval()
    pixel_values = processor(well)["pixel_values"]
    noise = torch.rand(pixel_values.shape[0], 6 * (size // 2 // mim.config.patch_size) ** 2,
                       generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        encoded = encoder(pixel_values, output_hidden_states=True)
        masked = mim(pixel_values, noise=noise, mask_ratio=0.75)  # the converted fixture's config has 0
    expected = {
        "pixel_values": pixel_values, "last_hidden_state": encoded.last_hidden_state,
        "hidden_state_1": encoded.hidden_states[1], "pooler_output": encoded.pooler_output, "loss": masked.loss,
        "reconstruction": masked.reconstruction, "mask": masked.mask,
        "pretraining_reconstruction": masked.reconstruction,
        "well_embedding": encoded.pooler_output.mean(0), "resaved_pooler_output": encoded.pooler_output,
    }

    save_file({"well": torch.from_numpy(well), "noise": noise}, tmp_path / "inputs.safetensors")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
           "PYTHONPATH": ""}  # nothing of the checkout on the path either
    command = [sys.executable, "-c", REMOTE_SCRIPT, str(directory), str(tmp_path / "inputs.safetensors"),
               str(tmp_path / "outputs.safetensors"), str(tmp_path / "resaved")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(module.startswith("transformers_modules.") for module in modules.values()), modules

    remote = load_file(tmp_path / "outputs.safetensors")
    assert remote.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(remote[name], tensor, rtol=0, atol=0, msg=name)
    assert sorted(path.name for path in (tmp_path / "resaved").glob("*.py")) == CODE_FILES


def test_saved_code_imports_only_itself_transformers_torch_and_numpy(tmp_path):
    directory, _ = saved_model(tmp_path)
    assert sorted(path.name for path in directory.glob("*.py")) == CODE_FILES
    allowed = {"torch", "transformers", "numpy"} | set(sys.stdlib_module_names)
    for name in CODE_FILES:
        # transformers' own check: what a host must have installed (imports under `if is_..._available()` excluded)
        assert set(get_imports(directory / name)) <= allowed, name
        assert {f"{module}.py" for module in get_relative_imports(directory / name)} <= set(CODE_FILES), name
    for name in CODE_FILES:  # the copies are the installed files, byte for byte
        assert (directory / name).read_bytes() == (REPO_ROOT / "modeling_phenom" / name).read_bytes()


def test_with_phenom_installed_the_installed_classes_load_and_no_remote_code_runs(tmp_path, monkeypatch):
    prompts = []
    monkeypatch.setattr(builtins, "input", lambda *args: prompts.append(args) or "n")
    directory, _ = saved_model(tmp_path)
    assert "custom_pipelines" in json.loads((directory / "config.json").read_text())
    config = AutoConfig.from_pretrained(directory)
    # pipeline() would demand trust_remote_code for a task listed here, although Phenom's pipeline is registered.
    assert not hasattr(config, "custom_pipelines")
    loaded = [config, AutoModel.from_pretrained(directory), AutoModelForMaskedImageModeling.from_pretrained(directory),
              AutoModelForPreTraining.from_pretrained(directory), AutoImageProcessor.from_pretrained(directory),
              pipeline("image-feature-extraction", model=str(directory)),
              # transformers prefers registered classes to a directory's code, even when remote code is trusted
              AutoModel.from_pretrained(directory, trust_remote_code=True),
              pipeline("image-feature-extraction", model=str(directory), trust_remote_code=True)]
    assert all(type(item).__module__.startswith("modeling_phenom.") for item in loaded), [type(x) for x in loaded]
    assert not prompts, prompts  # nobody asked whether to run remote code
    assert not [name for name in sys.modules if name.startswith("transformers_modules")]


def test_a_model_loaded_from_openphenoms_legacy_layout_saves_a_plain_directory(tmp_path):
    legacy = AutoModel.from_pretrained(hub_directory(tmp_path / "OpenPhenom"))
    legacy.save_pretrained(tmp_path / "native")
    assert "auto_map" not in json.loads((tmp_path / "native" / "config.json").read_text())
    assert not list((tmp_path / "native").glob("*.py"))  # the conversion writer is no part of the remote code
