"""`phenom card`: the model-index round-trips every metric exactly, the card's own "how to get started" snippet runs
against an offline Hugging Face cache, the push path as far as it runs offline (`--dry-run`, credentials), and the
bad inputs of issue 13 give clear errors."""

import hashlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
import yaml
from conftest import FIXTURES, REPO_ROOT, small_config
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from eval.results import ResultsError, read_all_results
from hub_cards.card import CardError, build_card, get_started_snippet, write_card
from hub_cards.model_info import LicenseError, ModelSourceError, describe_model
from hub_cards.publish import PublishError, plan_push, stage_model_files
from phenom.commands.card import main

RESULTS = FIXTURES / "hub_cards"
REPO_ID = "phenom-tests/phenom-small"
COMMIT = hashlib.sha1(b"phenom-small").hexdigest()


def save_small_model(directory: Path, **overrides) -> Path:
    """A `save_pretrained` directory of a small Phenom encoder with a 32 px image processor."""
    from modeling_phenom import PhenomImageProcessor, PhenomModel

    PhenomModel(small_config(**overrides)).save_pretrained(directory)
    PhenomImageProcessor(crop_size=32).save_pretrained(directory)
    return directory


def fill_hub_cache(cache: Path, repo_id: str, files: Path) -> Path:
    """Put the files of `files` into `cache` in the Hub cache layout: blobs by sha256, `snapshots/<commit>/` links,
    `refs/main` naming the commit (what `huggingface_hub` writes after a download)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in sorted(files.iterdir()):
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        (repo / "blobs" / digest).write_bytes(file.read_bytes())
        (snapshot / file.name).symlink_to(Path("..", "..", "blobs", digest))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return repo


def offline_env(hf_home: Path, **extra) -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE", "HF_HUB_CACHE")}
    return {**env, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"),
            "PYTHONPATH": str(REPO_ROOT), **extra}


def expected_metric_types(*folders: str) -> dict[str, float | int]:
    """`<metric>/block<k>/<correction>` -> value, read straight from the hand-written JSON files."""
    expected = {}
    for folder in folders:
        root = RESULTS / folder
        for file in sorted(root.glob("**/results.json")):
            document = json.loads(file.read_text())
            suffix = (f"/block{document['block']}" if document["block"] is not None else "") + (
                f"/{document['correction']}" if document["correction"] else "")
            for name, value in document["metrics"].items():
                expected[name + suffix] = value
    return expected


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    return save_small_model(tmp_path_factory.mktemp("models") / "phenom-small")


def test_card_model_index_round_trips_every_metric_exactly(small_model, tmp_path):
    results = read_all_results([RESULTS / "small_eval", RESULTS / "small_probe", RESULTS / "small_tvn"])
    card = build_card(results, describe_model(str(small_model)), repo_id=REPO_ID)
    readme, _ = write_card(card, tmp_path / "card", results)

    loaded = ModelCard.load(readme).data.eval_results
    got = {result.metric_type: result.metric_value for result in loaded}
    expected = expected_metric_types("small_eval", "small_probe", "small_tvn")
    assert len(loaded) == len(expected) == 30  # nothing merged away, nothing added
    assert got == expected
    assert all(type(got[key]) is type(expected[key]) for key in expected)  # ints stay ints (probe_best_block)
    # huggingface_hub merged everything under one task-and-dataset entry; block and correction survive in the type.
    front_matter = yaml.safe_load(readme.read_text().split("---")[1])
    assert len(front_matter["model-index"][0]["results"]) == 1
    assert {(result.task_type, result.dataset_type) for result in loaded} == {
        ("image-feature-extraction", "recursionpharma/rxrx3-core")}


def test_card_front_matter_and_sections(small_model, tmp_path):
    from modeling_phenom import PhenomModel

    results = read_all_results([RESULTS / "small_eval", RESULTS / "small_probe"])
    card = build_card(results, describe_model(str(small_model)), repo_id=REPO_ID)
    data = card.data
    assert data.library_name == "transformers" and data.license == "apache-2.0"
    assert {"biology", "microscopy", "cell-painting", "mae"} <= set(data.tags)
    assert data.datasets == ["recursionpharma/rxrx3-core"]
    text = card.content
    for heading in ("## Model details", "## Uses", "### Limitations", "## Training data and recipe", "## Evaluation",
                    "### As reported by the paper (its own null; not comparable one to one)",
                    "## How to get started", "## Citation"):
        assert f"\n{heading}\n" in text, heading
    parameters = sum(parameter.numel() for parameter in PhenomModel(small_config()).parameters())
    assert f"| Encoder parameters | {parameters:,} |" in text
    assert "| Width / depth / heads / MLP | 32 / 3 / 2 / 64 |" in text and "| Patch | 8 x 8 px |" in text
    # Our numbers with the random baseline; the paper's table (paper.md §6.5) apart and labelled.
    assert "| `recall_CORUM_0.05_0.95` | 0.3 ± 0.013 | 0.35 ± 0.015 | 0.1 |" in text
    paper = text.split("### As reported by the paper")[1]
    assert "| Phenom-2 (MAE-G/8) | 0.486 | 0.553 | 0.197 | 0.415 |" in paper
    assert "| Random | 0.107 | 0.111 | 0.107 | 0.115 |" in paper
    assert "@inproceedings{kenyondean2025vitally" in text and "@software{phenom" in text
    # The probe's recommended block goes into the snippet.
    assert "blocks=[2]" in get_started_snippet(text)


def test_card_of_converted_openphenom_weights_keeps_the_non_commercial_license(tmp_path):
    model = describe_model(str(save_small_model(tmp_path / "converted", legacy_bias_routing=True)))
    card = build_card(read_all_results([RESULTS / "small_eval"]), model, repo_id=REPO_ID)
    assert card.data.license == "other"
    assert card.data.license_name == "recursion-non-commercial-eula"
    assert card.data.license_link == "https://huggingface.co/recursionpharma/OpenPhenom/blob/main/LICENSE"
    assert card.data.base_model == "recursionpharma/OpenPhenom"
    assert "non-commercial use only" in card.content
    with pytest.raises(LicenseError, match="cannot be relicensed"):
        build_card(read_all_results([RESULTS / "small_eval"]), model, license="apache-2.0")


def test_card_of_the_openphenom_layout_reads_its_legacy_config():
    model = describe_model(str(FIXTURES / "openphenom_tiny"))
    card = build_card(read_all_results([RESULTS / "small_eval"]), model, repo_id=REPO_ID)
    assert card.data.license == "other" and card.data.base_model == "recursionpharma/OpenPhenom"
    assert "| Width / depth / heads / MLP | 64 / 4 / 4 / 256 |" in card.content
    assert model.weight_file_parameters is None  # the released "model.safetensors" is a torch zip


def test_weight_file_values_come_from_the_safetensors_headers_of_one_file_or_its_shards(tmp_path):
    from safetensors.torch import load_file

    from modeling_phenom import PhenomForMaskedImageModeling, PhenomImageProcessor

    model = PhenomForMaskedImageModeling(small_config())
    for name, shard_size in (("single", "10GB"), ("sharded", "40KB")):
        model.save_pretrained(tmp_path / name, max_shard_size=shard_size)
        PhenomImageProcessor(crop_size=32).save_pretrained(tmp_path / name)
    shards = sorted((tmp_path / "sharded").glob("*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    stored = sum(tensor.numel() for tensor in load_file(tmp_path / "single" / "model.safetensors").values())
    assert stored > describe_model(str(tmp_path / "single")).encoder_parameters  # the decoder is in the file
    assert describe_model(str(tmp_path / "single")).weight_file_parameters == stored
    assert describe_model(str(tmp_path / "sharded")).weight_file_parameters == stored


def test_card_reads_the_training_run_config_beside_the_model(tmp_path):
    run = tmp_path / "my-run"
    save_small_model(run / "final")
    (run / "config.yaml").write_text(yaml.safe_dump({
        "model": {"preset": "tiny"}, "data": {"path": "recursionpharma/rxrx3-core"}, "max_steps": 40, "seed": 0}))
    model = describe_model(str(run / "final"))
    assert model.default_name == "my-run"
    card = build_card(read_all_results([RESULTS / "small_eval"]), model)
    assert "| `data.path` | `recursionpharma/rxrx3-core` |" in card.content
    # Weights trained on Recursion's RxRx data follow the data's non-commercial license.
    assert card.data.license == "other" and "rxrx3-core" in card.data.license_link
    assert card.data.model_name == "my-run"


def test_get_started_snippet_runs_offline_against_a_prefilled_hub_cache(tmp_path):
    hf_home = tmp_path / "hf_home"
    fill_hub_cache(hf_home / "hub", REPO_ID, save_small_model(tmp_path / "to_upload"))
    # The card is made from the Hub id: config and preprocessor config come from the cache (offline).
    results = read_all_results([RESULTS / "small_eval", RESULTS / "small_probe"])
    model = describe_model(REPO_ID, cache_dir=hf_home / "hub")
    assert model.repo_id == REPO_ID and model.local_dir is None and model.has_preprocessor_config
    work = tmp_path / "work"  # no local folder named like the repo id: the Hub cache must serve it
    readme, _ = write_card(build_card(results, model), work / "card", results)

    snippet = get_started_snippet(readme.read_text())
    # The model was saved with its remote code, so the card also says how to load it without Phenom.
    assert f'AutoModel.from_pretrained("{REPO_ID}", trust_remote_code=True)' in readme.read_text()
    assert f'AutoModel.from_pretrained("{REPO_ID}")' in snippet
    assert f'PhenomImageProcessor.from_pretrained("{REPO_ID}")' in snippet
    assert "import modeling_phenom" in snippet
    (work / "snippet.py").write_text(snippet)
    ran = subprocess.run([sys.executable, "snippet.py"], cwd=work, env=offline_env(hf_home), capture_output=True,
                         text=True)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.splitlines() == ["torch.Size([32])", "torch.Size([32])"]


# ----------------------------------------------------------------------------------------------- publishing
def test_push_dry_run_writes_the_files_and_prints_the_exact_operations(small_model, tmp_path, capsys):
    out = tmp_path / "card"
    code = main(["--results", str(RESULTS / "small_eval"), "--model", str(small_model), "--out", str(out),
                 "--push", REPO_ID, "--dry-run", "--upload-model"])
    printed = capsys.readouterr().out
    assert code == 0
    assert (out / "README.md").is_file()
    assert (out / "phenom_results" / "RxRx3-core" / "block2_pca-centerscale.json").read_bytes() == (
        RESULTS / "small_eval" / "block2" / "results.json").read_bytes()
    operations = [line.split(". ", 1)[1] for line in printed.splitlines() if line[:1].isdigit()]
    assert operations[0] == f"huggingface_hub.create_repo(repo_id='{REPO_ID}', repo_type='model', exist_ok=True, " \
                            "private=False)"
    uploaded = [line.split("path_in_repo='")[1].split("'")[0] for line in operations[1:]]
    assert uploaded == ["config.json", "configuration_phenom.py", "image_processing_phenom.py", "model.safetensors",
                        "modeling_phenom.py", "pipeline_phenom.py", "preprocessor_config.json",
                        "phenom_results/RxRx3-core/block2_pca-centerscale.json",
                        "phenom_results/RxRx3-core/block3_pca-centerscale.json", "README.md"]
    assert f"path_or_fileobj='{out / 'README.md'}'" in operations[-1]


def test_upload_model_makes_a_directory_without_remote_code_hub_native(tmp_path):
    from modeling_phenom import PhenomConfig
    from modeling_phenom.modeling_phenom import remote_code_fields

    # A directory as Phenom saved it before it wrote remote code: no auto_map, no source files.
    old = save_small_model(tmp_path / "old")
    for file in old.glob("*.py"):
        file.unlink()
    for name in ("config.json", "preprocessor_config.json"):
        document = json.loads((old / name).read_text())
        document.pop("auto_map"), document.pop("custom_pipelines", None)
        (old / name).write_text(json.dumps(document))
    (old / "README.md").write_text("an old card")
    files = dict((name, local) for local, name in stage_model_files(old, tmp_path / "staged"))
    code = ["configuration_phenom.py", "image_processing_phenom.py", "modeling_phenom.py", "pipeline_phenom.py"]
    assert sorted(files) == sorted(["config.json", "model.safetensors", "preprocessor_config.json", *code])
    assert files["model.safetensors"] == old / "model.safetensors"  # weights go up as they are
    config = json.loads(files["config.json"].read_text())
    assert {key: config[key] for key in ("auto_map", "custom_pipelines")} == remote_code_fields()
    assert PhenomConfig(**config).to_dict() == PhenomConfig.from_pretrained(old).to_dict() | {
        "auto_map": config["auto_map"]}  # the same model otherwise (custom_pipelines are served locally here)
    assert json.loads(files["preprocessor_config.json"].read_text())["auto_map"] == {
        "AutoImageProcessor": "image_processing_phenom.PhenomImageProcessor"}
    for name in code:
        assert files[name].read_bytes() == (REPO_ROOT / "modeling_phenom" / name).read_bytes()


def test_upload_model_refuses_openphenoms_legacy_layout(tmp_path):
    from openphenom_layout import hub_directory

    with pytest.raises(PublishError, match="native Phenom directory.*OpenPhenomConfig.*phenom convert"):
        stage_model_files(hub_directory(tmp_path / "OpenPhenom"), tmp_path / "staged")


def test_push_plans_call_huggingface_hub_with_arguments_its_functions_accept(small_model, tmp_path):
    results = read_all_results([RESULTS / "small_eval"])
    card = build_card(results, describe_model(str(small_model)), repo_id=REPO_ID)
    readme, copies = write_card(card, tmp_path / "card", results)
    metadata = card.data.to_dict()
    for metadata_only in (False, True):
        plan = plan_push(REPO_ID, readme, copies, card_metadata=metadata, metadata_only=metadata_only,
                         create_pr=metadata_only, model_files=stage_model_files(small_model, tmp_path / "staged"))
        for operation in plan:
            function = getattr(huggingface_hub, operation.function)
            inspect.signature(function).bind(**operation.kwargs, token="hf_example")
            if operation.function == "upload_file":
                assert Path(operation.kwargs["path_or_fileobj"]).is_file()
    # metadata_update merges this model-index with huggingface_hub's own parser: every metric is in it.
    update = plan[-1]
    assert update.function == "metadata_update" and update.kwargs["overwrite"] is True
    _, parsed = model_index_to_eval_results(update.kwargs["metadata"]["model-index"])
    assert {result.metric_type: result.metric_value for result in parsed} == expected_metric_types("small_eval")


def test_push_without_a_token_is_refused_before_any_work(tmp_path):
    out = tmp_path / "card"
    command = [sys.executable, "-m", "phenom", "card", "--results", str(RESULTS / "small_eval"), "--model",
               str(tmp_path / "not-even-read"), "--out", str(out), "--push", REPO_ID]
    result = subprocess.run(command, env=offline_env(tmp_path / "empty_hf_home"), capture_output=True, text=True)
    assert result.returncode == 2
    assert "no Hugging Face token" in result.stderr and "hf auth login" in result.stderr
    assert not out.exists()


def test_push_while_offline_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")  # conftest keeps the Hub offline
    out = tmp_path / "card"
    code = main(["--results", str(RESULTS / "small_eval"), "--model", str(tmp_path / "not-even-read"), "--out",
                 str(out), "--push", REPO_ID])
    assert code == 2 and "HF_HUB_OFFLINE is set" in capsys.readouterr().err
    assert not out.exists()


# ----------------------------------------------------------------------------------------------- bad input
def test_results_for_different_datasets_need_an_explicit_flag(small_model):
    results = read_all_results([RESULTS / "small_eval", RESULTS / "small_rxrx1"])
    model = describe_model(str(small_model))
    with pytest.raises(CardError, match=r"different datasets: 'recursionpharma/rxrx3-core' .*'rxrx1'.*"
                                        r"--allow-multiple-datasets"):
        build_card(results, model)
    card = build_card(results, model, allow_multiple_datasets=True)
    assert {result.dataset_type for result in card.data.eval_results} == {"recursionpharma/rxrx3-core", "rxrx1"}


def test_a_dataset_alias_is_the_same_dataset(small_model):
    # The probe names "rxrx3-core", the eval "recursionpharma/rxrx3-core": one dataset, no flag needed.
    card = build_card(read_all_results([RESULTS / "small_eval", RESULTS / "small_probe"]),
                      describe_model(str(small_model)))
    assert {(result.dataset_type, result.dataset_name) for result in card.data.eval_results} == {
        ("recursionpharma/rxrx3-core", "RxRx3-core")}
    assert card.data.datasets == ["recursionpharma/rxrx3-core"]
    # every metric of both folders is kept under that one dataset (the probe's results are not dropped)
    assert {result.metric_type: result.metric_value for result in card.data.eval_results} == expected_metric_types(
        "small_eval", "small_probe")


@pytest.mark.parametrize(("file", "message"), [("null_metric.json", r"'compound_gene_ap_max' has no value \(null\)"),
                                               ("nan_metric.json", r"'recall_CORUM_0.05_0.95' has no value \(nan\)")])
def test_a_metric_without_a_value_is_an_error(file, message):
    with pytest.raises(ResultsError, match=message):
        read_all_results([RESULTS / "bad" / file])


def test_a_missing_model_directory_is_an_error(tmp_path, capsys):
    with pytest.raises(ModelSourceError, match=r"model directory .*/missing/model does not exist"):
        describe_model(str(tmp_path / "missing" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match=r"has no config.json \(expected a save_pretrained directory\)"):
        describe_model(str(tmp_path / "empty"))
    # A relative path shaped like a Hub id: neither a folder nor a cached repo, and the message says both.
    with pytest.raises(ModelSourceError, match=r"no such local directory, and config.json of the Hub repo"):
        describe_model("no-such-owner/no-such-model")
    code = main(["--results", str(RESULTS / "small_eval"), "--model", str(tmp_path / "missing"), "--out",
                 str(tmp_path / "card")])
    assert code == 2 and "does not exist" in capsys.readouterr().err and not (tmp_path / "card").exists()


def test_results_of_several_models_or_the_same_metric_twice_are_errors(small_model):
    model = describe_model(str(small_model))
    with pytest.raises(CardError, match="several models: 'phenom-small'.*'phenom-other'.*phenom leaderboard"):
        build_card(read_all_results([RESULTS / "small_eval", RESULTS / "other_eval"]), model)
    with pytest.raises(CardError, match="'recall_CORUM_0.05_0.95' .*block 2.* is reported twice"):
        build_card(read_all_results([RESULTS / "small_eval", RESULTS / "small_eval" / "block2"]), model)


@pytest.mark.parametrize(("flags", "message"), [
    ({"dry_run": True}, "--dry-run needs --push REPO_ID"),
    ({"push": REPO_ID, "create_pr": True}, "--create-pr needs --metadata-only"),
])
def test_card_refuses_push_flags_that_do_not_fit_before_any_work(flags, message, tmp_path):
    from hub_cards.card import card

    with pytest.raises(CardError, match=message):
        card([RESULTS / "small_eval"], str(tmp_path / "not-even-read"), tmp_path / "card", **flags)
    assert not (tmp_path / "card").exists()


def test_card_function_writes_the_card_and_returns_what_it_wrote(small_model, tmp_path):
    from hub_cards.card import card

    result = card([RESULTS / "small_eval"], str(small_model), tmp_path / "card", push=REPO_ID, dry_run=True)
    assert result.readme == tmp_path / "card" / "README.md" and result.readme.is_file()
    assert result.num_metrics == len(ModelCard.load(result.readme).data.eval_results) > 0
    assert [path for _, path in result.results_copies] == ["phenom_results/RxRx3-core/block2_pca-centerscale.json",
                                                           "phenom_results/RxRx3-core/block3_pca-centerscale.json"]
    assert [operation.function for operation in result.operations] == ["create_repo", "upload_file", "upload_file",
                                                                       "upload_file"]
    assert result.outcomes == []  # a dry run runs nothing
