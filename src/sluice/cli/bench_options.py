"""The options `bench run` and `bench sweep` share (one definition, one help text) and the parsers behind them."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import typer

from sluice.loadtest import SLO_METRICS

BASE_URL = typer.Option(..., "--base-url", help="Server root or API root: http://127.0.0.1:8000 or "
                        "http://127.0.0.1:8000/v1 (either works).")
MODEL = typer.Option(..., "--model", help="Model name sent in each request; also picks the tokenizer used to count "
                     "prompt tokens.")
ENDPOINT = typer.Option(None, "--endpoint", help="chat (/v1/chat/completions, the default) or completions "
                        "(/v1/completions); short forms (chat, chat/completions, completions) and full paths work.")
BACKEND = typer.Option(None, "--backend", help="vLLM's --backend names: openai or vllm mean /v1/completions, "
                       "openai-chat /v1/chat/completions (when --endpoint is not given).")
REQUEST_RATE = typer.Option(math.inf, "--request-rate", help="Requests per second; inf sends all at once. Arrivals "
                            "follow --arrival.")
ARRIVAL = typer.Option(None, "--arrival", help="constant (a gap of exactly 1/rate), poisson or gamma (shape "
                       "--burstiness). Default: poisson, gamma when --burstiness is not 1, constant when it is inf.")
BURSTINESS = typer.Option(1.0, "--burstiness", help="Gamma shape of the arrival gaps: 1 is Poisson, < 1 burstier, "
                          "> 1 more uniform, inf constant. Only with a finite --request-rate.")
RAMP_UP = typer.Option(0.0, "--ramp-up-s", min=0.0, help="Ramp the rate linearly from 0 to --request-rate over "
                       "this many seconds, then hold it.")
MAX_CONCURRENCY = typer.Option(None, "--max-concurrency", min=1, help="Most requests in flight at once "
                               "(default: unlimited).")
DURATION = typer.Option(None, "--duration", min=0.001, help="Timed run: keep sending (cycling through the "
                        "--num-prompts prompts) for this many seconds, then let the requests in flight finish. Needs "
                        "a finite --request-rate or a --max-concurrency.")
DATASET_NAME = typer.Option("random", "--dataset-name", help="random, sharegpt or jsonl.")
DATASET_PATH = typer.Option(None, "--dataset-path", help="ShareGPT JSON or JSONL of {\"prompt\": ..., "
                            "\"output_len\"?: ...} objects.")
INPUT_LEN = typer.Option(1024, "--random-input-len", min=1, help="random: prompt length in tokens (after the "
                         "prefix).")
OUTPUT_LEN = typer.Option(128, "--random-output-len", min=1, help="random: max output tokens; jsonl: the default "
                          "when a line sets no output_len.")
RANGE_RATIO = typer.Option(0.0, "--random-range-ratio", min=0.0, max=0.999,
                           help="random: lengths drawn uniformly in [L·(1−r), L·(1+r)].")
PREFIX_LEN = typer.Option(0, "--random-prefix-len", min=0, help="random: a shared prefix of this many tokens "
                          "before each prompt (as vLLM).")
PREFIX_COUNT = typer.Option(1, "--prefix-count", min=1, help="random: this many distinct shared prefixes, used in "
                            "turn (a shared-prefix workload).")
TURNS = typer.Option(1, "--turns", min=1, help="random: user turns per conversation (multi-turn chat: each turn is "
                     "sent with the answers so far; --num-prompts counts conversations).")
SHAREGPT_OUTPUT_LEN = typer.Option(None, "--sharegpt-output-len", min=1,
                                   help="sharegpt: fixed max output tokens instead of the reply's.")
SEED = typer.Option(0, "--seed", help="Seed of the dataset sampling and the arrival gaps.")
GOODPUT = typer.Option([], "--goodput", help="SLOs as METRIC:MS (ttft, tpot, e2el), e.g. --goodput 'ttft:500 "
                       "tpot:50'; goodput counts requests meeting all.")
PERCENTILES = typer.Option("99", "--metric-percentiles", "--percentiles",
                           help="Comma-separated percentiles to report, e.g. 50,90,95,99.")
WARMUP = typer.Option(0, "--warmup", "--num-warmups", min=0, help="Send this many requests first (other prompts, "
                      "same concurrency cap) and discard them: they count in no metric; the result records "
                      "`warmup_requests`.")
TIMEOUT = typer.Option(6 * 3600.0, "--timeout", min=0.001, help="Seconds before a request is given up "
                       "(classified `timeout`).")
IGNORE_EOS = typer.Option(False, "--ignore-eos", help="Send ignore_eos: true (vLLM, SGLang): generate every "
                          "requested output token.")
EXTRA_BODY = typer.Option(None, "--extra-body", help="A JSON object merged into every request body, e.g. "
                          "'{\"top_k\": 20, \"chat_template_kwargs\": {\"enable_thinking\": false}}'.")
HEADER = typer.Option([], "--header", help="'Name: value' (or vLLM's Name=value) sent with every request; "
                      "repeatable.")
API_KEY = typer.Option(None, "--api-key", envvar="OPENAI_API_KEY", help="Bearer token (default: $OPENAI_API_KEY).")
SAVE_RESULT = typer.Option(None, "--save-result", help="Write the results as JSON (vLLM's field names) to this "
                           "file; the per-request records go beside it (FILE.requests.jsonl).")
RESULT_DIR = typer.Option(None, "--result-dir", help="Save the result in this directory (created), as "
                          "--result-filename or --save-result, else under vLLM's automatic name.")
RESULT_FILENAME = typer.Option(None, "--result-filename", help="The result file's name (in --result-dir).")
SAVE_DETAILED = typer.Option(False, "--save-detailed", help="Also keep the per-request arrays in the JSON itself "
                             "(vLLM's --save-detailed: ttfts, itls, e2els, start_times, input_lens, output_lens, "
                             "generated_texts, errors).")
SAVE_REQUESTS = typer.Option(True, "--save-requests/--no-save-requests", help="Write the per-request records "
                             "beside the result (RESULT.requests.jsonl); `bench report` draws its plots from them.")
CSV = typer.Option(None, "--csv", help="Also write the per-request records as CSV to this file.")
PLOT_DIR = typer.Option(None, "--plot-dir", help="Write PNG plots to this directory.")
REPORT = typer.Option(None, "--report", help="Write a self-contained HTML report (tables, errors, plots) to this file.")


def parse_goodput(values: list[str]) -> dict[str, float]:
    """`ttft:500 tpot:50` (one or several --goodput values, space-separated) -> {"ttft": 500.0, ...} in ms."""
    slos: dict[str, float] = {}
    for item in " ".join(values).split():
        name, sep, value = item.partition(":")
        if not sep:
            raise ValueError(f"goodput item {item!r} is not METRIC:MS")
        if name not in SLO_METRICS:
            raise ValueError(f"goodput metric {name!r} is not one of {', '.join(SLO_METRICS)}")
        slos[name] = float(value)
        if slos[name] < 0:
            raise ValueError(f"goodput SLO for {name} must not be negative")
    return slos


def parse_percentiles(text: str) -> list[float]:
    values = [float(p) for p in text.split(",") if p.strip()]
    if not values or any(not 0 <= p <= 100 for p in values):
        raise ValueError("percentiles must be comma-separated numbers in [0, 100]")
    return values


def choose_endpoint(endpoint: str | None, backend: str | None) -> str:
    """--endpoint, else the one --backend names, else chat; a backend and an endpoint of the other API conflict."""
    from sluice.loadtest import CHAT_ENDPOINT, TargetError, backend_endpoint, endpoint_is_chat

    implied = backend_endpoint(backend) if backend is not None else None
    if endpoint is None:
        return implied or CHAT_ENDPOINT
    if implied is not None and endpoint_is_chat(endpoint) != (implied == CHAT_ENDPOINT):
        raise TargetError(f"--backend {backend} speaks {implied}, but --endpoint is {endpoint!r}; drop one")
    return endpoint


def result_path(save_result: Path | None, result_dir: Path | None, result_filename: str | None,
                automatic_name: str) -> Path | None:
    """Where the result JSON goes: --save-result or --result-filename (under --result-dir when relative), or
    --result-dir alone with vLLM's automatic name; None when nothing asks for a file."""
    if save_result is not None and str(save_result).startswith("-"):
        raise ValueError(f"--save-result takes a file name, not {str(save_result)!r} (vLLM's bare --save-result: "
                         "give --result-dir DIR and optionally --result-filename NAME)")
    if save_result is not None and result_filename is not None:
        raise ValueError("give --save-result FILE or --result-filename NAME, not both")
    if save_result is None and result_filename is None and result_dir is None:
        return None
    name = save_result or Path(result_filename or automatic_name)
    if result_dir is not None and not name.is_absolute():
        result_dir.mkdir(parents=True, exist_ok=True)
        return result_dir / name
    return name


def automatic_name(label: str, request_rate: float, max_concurrency: int | None, model: str) -> str:
    """vLLM's result file name: `{backend}-{rate}qps[-concurrency{c}]-{model}-{yyyymmdd-HHMMSS}.json`."""
    concurrency = f"-concurrency{max_concurrency}" if max_concurrency is not None else ""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{label}-{request_rate}qps{concurrency}-{model.split('/')[-1]}-{stamp}.json"
