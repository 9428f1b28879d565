"""`sluice plan fit|throughput|recommend|gpus|models`: tables, documented JSON, plots, exit codes, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
import typer
from typer.testing import CliRunner

from sluice.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args: str) -> Any:
    return runner.invoke(app, ["plan", *args], env=WIDE)


def run_json(*args: str) -> dict[str, Any]:
    result = run(*args, "--json")
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_fit_explains_the_memory_of_llama_3_1_8b_on_an_h100() -> None:
    result = run("fit", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--max-model-len", "8192")
    assert result.exit_code == 0, result.output
    for text in ("fits", "14.99 GiB", "4.76 GiB", "128 KiB = 2 × 32 layers × 8 KV heads × 128 × 2 B",
                 "8,192 tokens × KV per token = 1.00 GiB"):
        assert text in result.stdout


def test_fit_json_has_the_documented_keys() -> None:
    document = run_json("fit", "-m", "llama-3-8b", "-g", "h100-sxm")
    assert document["schema"] == "sluice.plan.fit/v1"
    assert {"model", "gpu", "deployment", "auto_parallel", "fits", "problems", "warnings", "model_weights_gb",
            "model_weights_gib", "weights_min_gpus", "memory_per_gpu_gib", "kv_cache", "stages"} <= set(document)
    assert set(document["memory_per_gpu_gib"]) == {"total", "budget", "weights", "activation_peak", "non_torch",
                                                   "kv_cache"}
    assert set(document["kv_cache"]) == {"bytes_per_token", "bytes_per_token_per_gpu", "max_model_len_sequence_gib",
                                         "capacity_tokens", "max_concurrency"}
    assert document["kv_cache"]["bytes_per_token"] == 131072
    assert document["kv_cache"]["max_model_len_sequence_gib"] == 1.0
    assert document["model_weights_gb"] == pytest.approx(16.06, abs=0.01)
    assert document["deployment"]["max_num_seqs"] == 1024


def test_fit_picks_the_smallest_layout_and_exits_1_when_the_requested_one_does_not_fit() -> None:
    auto = run_json("fit", "-m", "llama-3.1-405b", "-g", "h100-sxm", "--max-model-len", "8192")
    assert auto["fits"] and auto["auto_parallel"]
    assert (auto["deployment"]["tensor_parallel_size"], auto["deployment"]["pipeline_parallel_size"]) == (8, 2)
    assert auto["deployment"]["num_nodes"] == 2 and auto["weights_min_gpus"] == 10

    result = run("fit", "-m", "llama-3.1-405b", "-g", "h100-sxm", "-tp", "8", "--max-model-len", "8192")
    assert result.exit_code == 1
    assert "does not fit" in result.stdout and "no memory left for the KV cache" in result.stdout


def test_unknown_ids_exit_2_and_name_the_bad_id() -> None:
    result = run("fit", "-m", "llama-3.1-8b", "-g", "h100")
    assert result.exit_code == 2
    assert "unknown GPU 'h100'" in result.stderr and "h100-sxm" in result.stderr
    result = run("throughput", "-m", "lama-3-8b", "-g", "h100-sxm")
    assert result.exit_code == 2 and "unknown model 'lama-3-8b'" in result.stderr
    result = run("fit", "-m", "llama-3.1-8b", "-g", "h100-sxm", "-q", "fp4")
    assert result.exit_code == 2 and "unknown quantization 'fp4'" in result.stderr


def test_throughput_prints_a_batch_table_latency_and_costs() -> None:
    result = run("throughput", "-m", "llama-3.1-8b", "-g", "h100-sxm", "--max-model-len", "8192",
                 "--batch-sizes", "1,8,64")
    assert result.exit_code == 0, result.output
    assert "decode tok/s" in result.stdout and "at concurrency 32" in result.stdout
    assert "per 1M output tokens" in result.stdout and "spot" in result.stdout


def test_throughput_json_and_plot(tmp_path: Path) -> None:
    png = tmp_path / "sweep.png"
    document = run_json("throughput", "-m", "llama-3.1-8b", "-g", "a100-80gb-sxm", "--max-model-len", "4096",
                        "--plot", str(png), "--concurrency", "16", "--price", "spot")
    assert document["schema"] == "sluice.plan.throughput/v1"
    assert {"deployment", "fits", "kv_capacity_tokens", "workload", "at_concurrency", "costs", "price", "batches",
            "plot"} <= set(document)
    assert document["workload"] == {"input_len": 1024, "output_len": 128, "concurrency": 16}
    assert {"ttft_ms", "tpot_ms", "output_tokens_per_s", "running", "kv_limited"} <= set(document["at_concurrency"])
    batch = document["batches"][0]
    assert {"batch_size", "decode_step_ms", "decode_tokens_per_s", "prefill_ms", "fits_in_kv", "ttft_ms", "tpot_ms",
            "output_tokens_per_s", "usd_per_million_output_tokens"} <= set(batch)
    assert [b["batch_size"] for b in document["batches"]] == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert document["plot"] == str(png)
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_throughput_with_a_custom_price_and_a_non_fitting_deployment() -> None:
    document = run_json("throughput", "-m", "llama-3.1-8b", "-g", "l4", "--max-model-len", "4096",
                        "--gpu-hour-usd", "0.5")
    assert [cost["provider"] for cost in document["costs"]] == ["custom"]
    assert document["costs"][0]["usd_per_gpu_hour"] == 0.5
    result = run("throughput", "-m", "llama-3-70b", "-g", "l4", "-tp", "1")
    assert result.exit_code == 1 and "does not start" in result.stderr


def test_recommend_lists_options_that_meet_the_slo_cheapest_first() -> None:
    document = run_json("recommend", "-m", "llama-3.1-70b", "--ttft-ms", "500", "--tpot-ms", "50",
                        "--concurrency", "32", "--top", "5")
    assert document["schema"] == "sluice.plan.recommend/v1" and document["reason"] is None
    options = document["options"]
    assert len(options) == 5 and [option["rank"] for option in options] == [1, 2, 3, 4, 5]
    assert [o["usd_per_million_output_tokens"] for o in options] == sorted(
        o["usd_per_million_output_tokens"] for o in options)
    for option in options:
        assert option["ttft_ms"] <= 500 and option["tpot_ms"] <= 50
        assert {"gpu", "quantization", "tensor_parallel_size", "pipeline_parallel_size", "replicas", "num_gpus",
                "provider", "usd_per_gpu_hour", "usd_per_hour", "output_tokens_per_s"} <= set(option)


def test_recommend_with_an_impossible_slo_exits_1_with_a_reason() -> None:
    result = run("recommend", "-m", "llama-3.1-8b", "--ttft-ms", "1", "--tpot-ms", "0.5", "--gpus", "h100-sxm,l4")
    assert result.exit_code == 1
    assert "no option" in result.stdout and "closest" in result.stdout
    document = run_json("recommend", "-m", "llama-3.1-8b", "--ttft-ms", "1", "--tpot-ms", "0.5")
    assert document["options"] == [] and "miss the latency objective" in document["reason"]


def test_gpus_and_models_list_the_catalogs() -> None:
    result = run("gpus")
    assert result.exit_code == 0 and "h100-sxm" in result.stdout and "mi300x" in result.stdout
    gpus = run_json("gpus")["gpus"]
    h100 = next(gpu for gpu in gpus if gpu["id"] == "h100-sxm")
    assert h100["memory_bandwidth_gb_s"] == 3350 and h100["prices"] and "spec" in h100["sources"]
    result = run("models")
    assert result.exit_code == 0 and "mixtral-8x7b" in result.stdout
    models = run_json("models")["models"]
    assert next(m for m in models if m["id"] == "llama-3-8b")["kv_bytes_per_token_bf16"] == 131072


def test_user_catalog_and_hf_config_work_from_the_command_line(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text("prices:\n  - {gpu: l4, provider: lambda, on_demand_usd: 0.1}\n")
    document = run_json("throughput", "-m", "llama-3.2-1b", "-g", "l4", "--max-model-len", "4096",
                        "--catalog", str(extra), "--provider", "lambda")
    assert document["costs"][0]["usd_per_gpu_hour"] == pytest.approx(0.1)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
                                  "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
                                  "head_dim": 64, "vocab_size": 128256, "max_position_embeddings": 131072,
                                  "tie_word_embeddings": True}))
    document = run_json("fit", "-m", str(config), "-g", "l4", "--max-model-len", "8192")
    assert document["fits"] and document["model"]["params"] == pytest.approx(1.236e9, rel=0.01)
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpus: 3\n")
    result = run("gpus", "--catalog", str(bad))
    assert result.exit_code == 2 and "gpus must be a list" in result.stderr


@pytest.mark.parametrize("command", ["fit", "throughput", "recommend", "gpus", "models"])
def test_every_command_and_option_has_help(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "--json" in result.stdout and "--catalog" in result.stdout
    group = typer.main.get_command(app).commands["plan"]  # type: ignore[attr-defined]
    click_command = group.commands[command]
    assert click_command.help
    assert all(param.help for param in click_command.params if isinstance(param, click.Option)), command
