"""``confab model list|show|use`` and the registry behind them, on real (tiny) model
folders and LoRAs, and the bundled GGUF file."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from confab.bot.cli import main
from confab.bot.config import load_config
from confab.bot.errors import ConfigError, ModelError
from confab.bot.lab.eval_store import recorded
from confab.bot.llm.config import ModelConfig
from confab.bot.llm.lora_folder import write_lora
from confab.bot.llm.registry import EVALUATIONS, ModelRegistry, RegistryError
from confab.bot.llm.transformers_backend import TransformersBackend
from confab.bot.llm.weights import bundled_model_path, load_tokenizer

CACHE = Path("~/.cache/confab").expanduser()
HELD_OUT = Path(__file__).parents[2] / "bot" / "lab" / "examples" / "tarnwick_heldout.csv"


@dataclass(frozen=True)
class Lab:
    config: Path
    tiny: Path  # a model folder named "tiny" in [models]
    tiny_parameters: int
    lora_parameters: int
    loras: Path  # model.loras_dir, holding the LoRA "tiny-lora"

    def run(self, *argv: str) -> int:
        return main([*argv, "--config", str(self.config)])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """A config naming a tiny random Llama (with the bundled tokenizer), and a LoRA
    LoRA of it with non-zero weights in the LoRAs folder."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("lab")
    tokenizer, _ = load_tokenizer(bundled_model_path(), CACHE)
    torch.manual_seed(0)
    settings = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(settings)
    tiny = root / "tiny"
    model.save_pretrained(tiny)
    tokenizer.save_pretrained(tiny)
    parameters = sum(p.numel() for p in model.parameters())

    lora = LoraConfig(
        r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    loras = root / "loras"
    (loras / "tiny-lora").mkdir(parents=True)
    described = {
        "base": str(tiny),
        "steps": 3,
        "train_file": "/data/tarnwick.csv",
        "train_examples": 40,
        "dtype": "float32",
        "last_loss": 1.5,
        "lora": {"rank": 2, "alpha": 4, "dropout": 0.0},
        "learning_rate": 0.001,
        "batch_size": 2,
    }
    with_lora = get_peft_model(model, lora)
    write_lora(with_lora, loras / "tiny-lora", described)
    trained = sum(p.numel() for p in with_lora.parameters() if p.requires_grad)
    (loras / "half-written").mkdir()  # no description: not a whole LoRA
    (loras / "half-written" / "adapter_config.json").write_text("{}")

    config = root / "config.toml"
    config.write_text(
        f'[bot]\ndatabase_url = "sqlite+aiosqlite:///{root / "confab.db"}"\n'
        f'[model]\nloras_dir = "{loras}"\n'
        f'[models]\ntiny = "{tiny}"\ngone = "{root / "deleted"}"\n'
    )
    return Lab(config, tiny, parameters, trained, loras)


def rows(printed: str) -> dict[str, str]:
    """``confab model list``'s table, by model name."""
    return {line.split()[0]: line for line in printed.splitlines()[1:] if line.strip()}


def test_list_shows_every_model_with_its_size_dtype_and_where_it_serves(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lab.run("model", "list") == 0
    table = rows(capsys.readouterr().out)
    assert list(table) == ["bundled", "gone", "tiny", "tiny-lora"]  # no half-written one
    assert "bundled GGUF" in table["bundled"] and "134.5M" in table["bundled"]
    assert "Q4_1" in table["bundled"] and table["bundled"].endswith("default (config)")
    tiny = f"{lab.tiny_parameters / 1e3:.1f}K"
    assert "model folder" in table["tiny"] and tiny in table["tiny"]
    assert "float32" in table["tiny"] and table["tiny"].endswith(" -")
    assert "LoRA" in table["tiny-lora"] and f"(+{lab.lora_parameters} LoRA)" in table["tiny-lora"]
    assert "not found" in table["gone"]


def test_use_chooses_the_default_and_a_channels_model_and_list_and_show_say_so(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lab.run("model", "use", "tiny-lora", "--channel", "console:general") == 0
    assert lab.run("model", "use", str(lab.tiny)) == 0  # a path to a named model is that model
    said = capsys.readouterr().out
    assert "tiny-lora now answers in console:general." in said
    assert "tiny now answers in every channel without a model of its own." in said

    assert lab.run("model", "list") == 0
    table = rows(capsys.readouterr().out)
    assert table["tiny"].endswith("default") and table["tiny-lora"].endswith("console:general")
    assert table["bundled"].endswith(" -")

    assert lab.run("model", "show", "tiny-lora") == 0
    shown = capsys.readouterr().out
    assert f"base: {lab.tiny}" in shown
    assert "trained: 3 steps on /data/tarnwick.csv (40 conversations)" in shown
    assert f"({lab.lora_parameters} trained, LoRA rank 2, alpha 4)" in shown
    assert "serves: console:general" in shown

    assert lab.run("model", "use", "--reset", "--channel", "console:general") == 0
    assert lab.run("model", "use", "--reset") == 0
    capsys.readouterr()
    assert lab.run("model", "list") == 0
    table = rows(capsys.readouterr().out)
    assert table["bundled"].endswith("default (config)") and table["tiny-lora"].endswith(" -")


def test_bad_choices_are_refused_with_what_is_known(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lab.run("model", "use", "nope") == 2
    error = capsys.readouterr().err
    assert error.startswith(
        "confab: No model is called nope. Known: bundled, gone, tiny, tiny-lora"
    )
    assert lab.run("model", "use", "gone") == 2
    assert "neither a model folder" in capsys.readouterr().err
    assert lab.run("model", "use", "tiny", "--channel", "general") == 2
    assert "is not PLATFORM:CHANNEL" in capsys.readouterr().err
    assert lab.run("model", "use", "tiny", "--reset") == 2
    assert lab.run("model", "show", "nope") == 2
    assert lab.run("model", "finetune", "--base", "tiny-lora", "--data", "x", "--out", "y") == 2
    assert "is a fine-tuned LoRA" in capsys.readouterr().err


def test_a_chosen_model_that_disappears_is_reported_by_list(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = lab.loras / "short-lived"
    shutil.copytree(lab.loras / "tiny-lora", copy)
    assert lab.run("model", "use", "short-lived", "--channel", "slack:C1") == 0
    shutil.rmtree(copy)
    capsys.readouterr()
    assert lab.run("model", "list") == 0
    printed = capsys.readouterr().out
    assert (
        "Chosen but not found (the default model answers there): slack:C1 (short-lived)" in printed
    )
    assert lab.run("model", "use", "--reset", "--channel", "slack:C1") == 0


def test_eval_stores_the_scores_of_any_model_for_show_and_list(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lab.run("model", "eval", "tiny", "--data", str(HELD_OUT), "--max-new-tokens", "2") == 0
    (run,) = recorded(lab.loras / EVALUATIONS / "tiny.json")
    assert run.evaluation.model == "tiny" and run.evaluation.task.total == 14
    capsys.readouterr()
    assert lab.run("model", "show", "tiny") == 0
    shown = capsys.readouterr().out
    assert (
        f"{HELD_OUT} (sha256 {run.data_sha256[:8]}): loss {run.evaluation.loss.mean_loss:.4f}"
        in shown
    )
    assert f"task {run.evaluation.task.correct}/14" in shown
    assert lab.run("model", "list") == 0
    table = rows(capsys.readouterr().out)
    assert f"task {run.evaluation.task.correct}/14, loss" in table["tiny"]


def test_the_engine_serves_a_lora_merged_into_its_base(lab: Lab) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    lora_folder = lab.loras / "tiny-lora"
    backend = TransformersBackend(
        ModelConfig(
            path=str(lora_folder), dtype="float32", attention="sdpa", max_new_tokens=3, threads=2
        )
    )
    asyncio.run(backend.start())
    try:
        assert backend.name == "tiny-lora"
        base = AutoModelForCausalLM.from_pretrained(str(lab.tiny), dtype=torch.float32)
        lora = load_file(lora_folder / "adapter_model.safetensors")
        prefix = "base_model.model.model.layers.0.self_attn.q_proj"
        delta = lora[f"{prefix}.lora_B.weight"] @ lora[f"{prefix}.lora_A.weight"] * (4 / 2)
        served = backend.model.model.layers[0].self_attn.q_proj.weight
        original = base.model.layers[0].self_attn.q_proj.weight
        assert not torch.allclose(served, original)
        assert torch.allclose(served, original + delta, atol=1e-6)

        async def answer() -> str:
            from confab.bot.llm.backend import ChatMessage

            return await backend.complete([ChatMessage("user", "Hello?")])

        assert isinstance(asyncio.run(answer()), str)
    finally:
        asyncio.run(backend.close())


def test_finetune_out_names_go_into_the_loras_folder(lab: Lab, tmp_path: Path) -> None:
    registry = ModelRegistry({"tiny": str(lab.tiny)}, lab.loras)
    assert registry.lora_folder("tarnwick") == lab.loras / "tarnwick"
    assert registry.lora_folder("./tarnwick") == Path("tarnwick")
    assert registry.lora_folder(str(tmp_path / "x")) == tmp_path / "x"
    for taken in ("bundled", "tiny"):
        with pytest.raises(RegistryError, match="already names a model"):
            registry.lora_folder(taken)
    entry = registry.find(str(lab.loras / "tiny-lora"))
    assert (entry.name, entry.kind) == ("tiny-lora", "lora")
    assert registry.find("tiny").key == registry.find(str(lab.tiny)).key


def test_model_names_in_the_config_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    for bad in ('"two words" = "/m"', 'bundled = "/m"', 'empty = " "'):
        config.write_text(f"[models]\n{bad}\n")
        with pytest.raises(ConfigError, match="models"):
            load_config(config)
    config.write_text('[models]\nqwen = "/srv/qwen"\n')
    assert load_config(config).models == {"qwen": "/srv/qwen"}


def test_a_model_chosen_by_path_is_listed_and_a_damaged_one_is_described_not_crashed_on(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unnamed = tmp_path / "unnamed"
    shutil.copytree(lab.tiny, unnamed)
    assert lab.run("model", "use", str(unnamed), "--channel", "console:x") == 0
    capsys.readouterr()
    assert lab.run("model", "list") == 0
    printed = capsys.readouterr().out
    assert rows(printed)[str(unnamed)].endswith("console:x") and "Chosen but not" not in printed

    (unnamed / "model.safetensors").write_bytes(b"abc")  # cut short
    assert lab.run("model", "show", str(unnamed)) == 0
    shown = capsys.readouterr().out
    assert "parameters: ?" in shown and "problem: its weights could not be read" in shown
    assert lab.run("model", "use", "--reset", "--channel", "console:x") == 0


def test_a_lora_trained_again_in_place_is_a_new_model_to_the_pool(lab: Lab) -> None:
    registry = ModelRegistry({}, lab.loras)
    before = registry.find("tiny-lora").key
    description = lab.loras / "tiny-lora" / "confab-adapter.json"
    description.write_text(description.read_text())  # what a new run's save does
    assert registry.find("tiny-lora").key != before
    assert registry.find(str(lab.loras / "tiny-lora")).key == registry.find("tiny-lora").key


def test_a_lora_that_does_not_fit_its_base_is_a_clear_load_error(lab: Lab, tmp_path: Path) -> None:
    from transformers import LlamaForCausalLM

    wider = tmp_path / "wider"
    settings = LlamaForCausalLM.config_class.from_pretrained(str(lab.tiny))
    settings.hidden_size, settings.intermediate_size = 32, 64
    LlamaForCausalLM(settings).save_pretrained(wider)
    shutil.copy(lab.tiny / "tokenizer.json", wider)
    shutil.copy(lab.tiny / "tokenizer_config.json", wider)
    lora = tmp_path / "mismatched"
    shutil.copytree(lab.loras / "tiny-lora", lora)
    description = json.loads((lora / "confab-adapter.json").read_text())
    (lora / "confab-adapter.json").write_text(json.dumps({**description, "base": str(wider)}))

    backend = TransformersBackend(ModelConfig(path=str(lora), dtype="float32", attention="sdpa"))
    with pytest.raises(ModelError) as caught:
        asyncio.run(backend.start())
    asyncio.run(backend.close())
    assert caught.value.user_message == "The model could not be loaded."
    assert "size mismatch" in str(caught.value)  # the cause, for the log
