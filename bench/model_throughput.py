"""Model throughput: many people asking at once, three ways of serving them.

Designs, each measured in its own process on the same weights:
  naive    one ``model.generate`` after another (the console slice's way), in
           ``--naive-dtype`` (float32: what ``generate`` serves from the converted GGUF)
  manager  transformers' continuous-batching manager (``init_continuous_batching``)
  engine   Confab's :class:`confab.bot.llm.engine.BatchEngine`
  llamacpp llama.cpp (llama-cpp-python) on the same GGUF file, one request after
           another, when it is installed; skipped with the reason when not

For each concurrency (requests of mixed prompt lengths, greedy, ``--new-tokens``
each) and arrival pattern (``burst``: all at once; ``staggered``: spread over
``--spread-s``), it prints aggregate tokens/s, time to first token and request
latency (p50/p95), the speedup over naive at the same point, and the process's
peak RSS.

    .venv/bin/python bench/model_throughput.py [--concurrency 1,4,8,16]
        [--arrivals burst,staggered] [--designs naive,manager,engine]
        [--new-tokens 128] [--dtype auto|float32|bfloat16|int4] [--naive-dtype float32]
        [--attention auto|sdpa|eager]
        [--max-batch-size N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SYSTEM = "You are Confab, a helpful assistant in a team chat. Answer clearly."
PARAGRAPH = (
    "Our release process has three stages. First, a release branch is cut from main "
    "every second Tuesday and only fixes are merged into it. Second, the branch is "
    "deployed to staging, where the on-call engineer runs the smoke tests and watches "
    "error rates for a day. Third, if nothing regressed, the branch is tagged and rolled "
    "out to production in waves of ten percent of traffic every hour. "
)
# Mixed prompt lengths (about 30 to 450 tokens), each asking for a long answer.
QUESTIONS = [
    "Describe Paris for a first-time visitor: history, districts, food and museums.",
    "Write a long poem about the sea, with at least six stanzas.",
    "Explain this process to a new colleague in detail, step by step:\n" + PARAGRAPH * 2,
    "Explain in detail what a hash map is, how it works inside, and when to use one.",
    "Read this and discuss every risk you see, in detail:\n" + PARAGRAPH * 5,
    "Give ten detailed tips for writing good commit messages, with examples.",
]


MAX_BATCH_SIZE = 0  # the engine's; 0 = model.max_batch_size's default
MODEL_PATH = ""  # a model folder or .gguf file; "" = the bundled model
ENGINE_THREAD: Any = None  # the engine's worker thread, which also loads the model


@dataclass
class Timing:
    submitted: float
    first: float
    done: float
    tokens: int


def prompts(tokenizer: Any, count: int) -> list[list[int]]:
    out = []
    for i in range(count):
        chat = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]},
        ]
        out.append(
            list(
                tokenizer.apply_chat_template(
                    chat, add_generation_prompt=True, tokenize=True, return_dict=False
                )
            )
        )
    return out


def arrival_offsets(count: int, pattern: str, spread: float) -> list[float]:
    if pattern == "burst":
        return [0.0] * count
    return [spread * i / (count - 1) for i in range(count)]


def model_folder() -> Path:
    """The folder transformers loads the model from (a GGUF file is converted once)."""
    from confab.bot.llm.config import ModelConfig
    from confab.bot.llm.weights import loadable_folder, resolve_model_path

    return loadable_folder(resolve_model_path(MODEL_PATH), ModelConfig().cache_dir, print)


def load(dtype: str, attention: str, served: bool = False) -> tuple[Any, Any]:
    """A transformers model in ``dtype``; ``served``, as a start serves it: a kept
    4-bit model is read back into confab's own decoder (the first run packs and
    keeps it), which has no ``generate``, and the tokenizer is read without
    transformers where it can be (a start that imports none holds less)."""
    from confab.bot.llm.chat_tokenizer import ChatTokenizer
    from confab.bot.llm.compute import pick_model
    from confab.bot.llm.config import ModelConfig
    from confab.bot.llm.packed_store import PackedStore

    cache = ModelConfig().cache_dir
    folder = model_folder()
    tokenizer: Any = ChatTokenizer.from_folder(folder) if served else None
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder))

    def load_model(dtype: Any) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).eval()

    store = PackedStore.for_model(cache, folder, [folder]) if served else None
    model = pick_model(load_model, tokenizer, dtype, attention, cache, str(folder), None, store)
    return model, tokenizer


def run_naive(model: Any, tokenizer: Any, batch: list[list[int]], offsets: list[float], new: int):
    """One generate per request, in arrival order, on one thread."""
    import torch
    from transformers import TextStreamer

    class FirstToken(TextStreamer):
        first = 0.0

        def put(self, value: Any) -> None:
            if self.next_tokens_are_prompt:
                self.next_tokens_are_prompt = False
                return
            if not self.first:
                self.first = time.perf_counter()

        def end(self) -> None:
            pass

    start = time.perf_counter()
    timings = []
    with torch.inference_mode():
        for prompt, offset in zip(batch, offsets, strict=True):
            submitted = start + offset
            time.sleep(max(0.0, submitted - time.perf_counter()))
            streamer = FirstToken(tokenizer)
            ids = torch.tensor([prompt])
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                streamer=streamer,
                pad_token_id=tokenizer.eos_token_id,
            )
            done = time.perf_counter()
            timings.append(Timing(submitted, streamer.first, done, out.shape[1] - len(prompt)))
    return timings


def run_manager(model: Any, tokenizer: Any, batch: list[list[int]], offsets: list[float], new: int):
    """transformers' continuous-batching manager, results through its asyncio handler."""
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=new,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    manager = model.init_continuous_batching(generation_config=config)
    manager.start()

    async def main() -> list[Timing]:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        timings: list[Timing] = []
        finished: list[asyncio.Event] = []
        for i, (prompt, offset) in enumerate(zip(batch, offsets, strict=True)):
            await asyncio.sleep(max(0.0, start + offset - time.perf_counter()))
            timing = Timing(time.perf_counter(), 0.0, 0.0, 0)
            event = asyncio.Event()

            def handle(result: Any, timing: Timing = timing, event: asyncio.Event = event) -> None:
                if result.generated_tokens and not timing.first:
                    timing.first = time.perf_counter()
                if result.is_finished():
                    timing.done = time.perf_counter()
                    timing.tokens = len(result.generated_tokens)
                    event.set()

            request_id = f"r{i}"
            manager.register_result_handler(request_id, handle)
            manager.add_request(prompt, request_id=request_id, max_new_tokens=new, streaming=True)
            timings.append(timing)
            finished.append(event)
        await asyncio.gather(*(e.wait() for e in finished))
        del loop
        return timings

    try:
        return asyncio.run(main())
    finally:
        manager.stop(block=True)


def run_llamacpp(
    model: Any, tokenizer: Any, batch: list[list[int]], offsets: list[float], new: int
):
    """llama.cpp's own generation on the GGUF file, greedy, one request after another."""
    start = time.perf_counter()
    timings = []
    for prompt, offset in zip(batch, offsets, strict=True):
        submitted = start + offset
        time.sleep(max(0.0, submitted - time.perf_counter()))
        model.reset()
        timing = Timing(submitted, 0.0, 0.0, 0)
        for token in model.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
            if not timing.first:
                timing.first = time.perf_counter()
            timing.tokens += 1
            if token == model.token_eos() or timing.tokens >= new:
                break
        timing.done = time.perf_counter()
        timings.append(timing)
    return timings


def load_llamacpp() -> tuple[Any, Any]:
    """llama.cpp on the GGUF file itself; the prompts come from the same tokenizer."""
    import torch
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    from confab.bot.llm.weights import resolve_model_path

    gguf = resolve_model_path(MODEL_PATH)
    model = Llama(
        model_path=str(gguf), n_ctx=4096, n_threads=torch.get_num_threads(), verbose=False
    )
    return model, AutoTokenizer.from_pretrained(str(model_folder()))


def llamacpp_missing() -> str | None:
    """Why the llama.cpp column cannot run here, or ``None`` when it can."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (pip install llama-cpp-python builds it)"
    if MODEL_PATH and not MODEL_PATH.endswith(".gguf"):
        return "it reads GGUF files only"
    return None


def run_engine(model: Any, tokenizer: Any, batch: list[list[int]], offsets: list[float], new: int):
    """Confab's engine, through its request API so token counts are exact."""
    from confab.bot.llm.backend import GenerationParams
    from confab.bot.llm.config import ModelConfig
    from confab.bot.llm.engine import BatchEngine, Finished, Request

    limits = ModelConfig()  # the shipped defaults, unless --max-batch-size says otherwise
    engine = BatchEngine(
        model,
        tokenizer,
        window=8192,
        max_batch_size=MAX_BATCH_SIZE or limits.max_batch_size,
        max_queue=limits.max_queue,
        executor=ENGINE_THREAD,
    )
    params = GenerationParams(max_new_tokens=new, temperature=0, repetition_penalty=1.0)

    async def one(prompt: list[int], submitted: float) -> Timing:
        await asyncio.sleep(max(0.0, submitted - time.perf_counter()))
        loop = asyncio.get_running_loop()
        timing = Timing(time.perf_counter(), 0.0, 0.0, 0)
        done = asyncio.Event()

        def emit(item: object) -> None:  # on the engine's thread
            now = time.perf_counter()
            if isinstance(item, str) and not timing.first:
                timing.first = now
            elif isinstance(item, Finished):
                timing.done, timing.tokens = now, item.tokens
                loop.call_soon_threadsafe(done.set)
            elif isinstance(item, BaseException):
                loop.call_soon_threadsafe(done.set)

        engine.submit(Request(prompt, params, emit))
        await done.wait()
        return timing

    async def main() -> list[Timing]:
        start = time.perf_counter()
        return await asyncio.gather(
            *(one(p, start + o) for p, o in zip(batch, offsets, strict=True))
        )

    try:
        return asyncio.run(main())
    finally:
        engine.close()


def worker(args: argparse.Namespace) -> None:
    """Run one design over every point and print one JSON line per point."""
    global ENGINE_THREAD
    # Why the engine computes on the thread that loaded the model (bot/llm/engine.py):
    # on a 2-core machine one greedy stream measured 20.8 tokens/s there, 16.3 on
    # another thread after the first had computed, 24.0 when only the other thread
    # ever computed. Growing the KV cache in place (bot/llm/kv_cache.py) saved about
    # 9% of a decoding step at a batch of 8 on the same machine.
    # Each design computes on the thread it would in production: naive on the one
    # that loads; the engine on its worker, which loads too; the manager on its
    # own thread, so its model is loaded on a thread that then ends (an idle
    # OpenMP team of a live thread would slow the manager's).
    if args.worker == "engine":
        from confab.bot.llm.engine import worker_thread

        ENGINE_THREAD = worker_thread()
        model, tokenizer = ENGINE_THREAD.submit(load, args.dtype, args.attention, True).result()
    elif args.worker == "llamacpp":
        model, tokenizer = load_llamacpp()
    elif args.worker == "manager":
        with ThreadPoolExecutor(1) as loader:
            model, tokenizer = loader.submit(load, args.dtype, args.attention).result()
    else:
        model, tokenizer = load(args.dtype, args.attention)
    designs = {
        "naive": run_naive,
        "manager": run_manager,
        "engine": run_engine,
        "llamacpp": run_llamacpp,
    }
    run = designs[args.worker]
    warm = prompts(tokenizer, 2)
    run(model, tokenizer, warm, [0.0, 0.0], 8)  # first-call costs are not the design's
    for count in args.concurrency:
        for pattern in args.arrivals if count > 1 else ["alone"]:
            started = time.perf_counter()
            if count == 1:  # each prompt of the mix on its own, one after another
                timings = []
                for prompt in prompts(tokenizer, len(QUESTIONS)):
                    timings += run(model, tokenizer, [prompt], [0.0], args.new_tokens)
            else:
                batch = prompts(tokenizer, count)
                offsets = arrival_offsets(count, pattern, args.spread_s)
                timings = run(model, tokenizer, batch, offsets, args.new_tokens)
            wall = time.perf_counter() - started
            point = {
                "design": args.worker,
                "dtype": "gguf" if args.worker == "llamacpp" else compute_name(model),
                "concurrency": count,
                "arrivals": pattern,
                "wall_s": wall,
                "timings": [asdict(t) for t in timings],
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
            print(json.dumps(point), flush=True)


def compute_name(model: Any) -> str:
    from confab.bot.llm.int4 import is_packed

    dtype = "int4" if is_packed(model) else str(model.dtype).removeprefix("torch.")
    return f"{dtype}/{model.config._attn_implementation}"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def summarise(point: dict[str, Any]) -> dict[str, float]:
    timings = [Timing(**t) for t in point["timings"]]
    tokens = sum(t.tokens for t in timings)
    ttft = [t.first - t.submitted for t in timings]
    latency = [t.done - t.submitted for t in timings]
    return {
        "tok_s": tokens / point["wall_s"],
        "ttft_p50": percentile(ttft, 0.5),
        "ttft_p95": percentile(ttft, 0.95),
        "lat_p50": percentile(latency, 0.5),
        "lat_p95": percentile(latency, 0.95),
        "tokens": tokens,
    }


def main() -> None:
    global MAX_BATCH_SIZE, MODEL_PATH
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,4,8,16")
    parser.add_argument("--arrivals", default="burst,staggered")
    parser.add_argument("--designs", default="naive,manager,engine,llamacpp")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--spread-s", type=float, default=4.0)
    dtypes = ["auto", "float32", "bfloat16", "int4"]
    parser.add_argument("--dtype", default="auto", choices=dtypes)
    parser.add_argument("--naive-dtype", default="float32", choices=dtypes)
    parser.add_argument("--attention", default="auto", choices=["auto", "sdpa", "eager"])
    parser.add_argument("--max-batch-size", type=int, default=0, help="the engine's (0: default)")
    parser.add_argument(
        "--model-path", default="", help="a model folder or .gguf (default: bundled)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.arrivals = args.arrivals.split(",")
    MAX_BATCH_SIZE, MODEL_PATH = args.max_batch_size, args.model_path
    if args.worker:
        worker(args)
        return

    results: dict[tuple[str, int, str], dict[str, Any]] = {}
    for design in args.designs.split(","):
        if design == "llamacpp" and (reason := llamacpp_missing()):
            print(f"llamacpp: skipped: {reason}")
            continue
        dtype = args.naive_dtype if design == "naive" else args.dtype
        command = [sys.executable, __file__, "--worker", design, "--dtype", dtype]
        command += ["--attention", args.attention]
        command += ["--concurrency", ",".join(map(str, args.concurrency))]
        command += ["--arrivals", ",".join(args.arrivals), "--new-tokens", str(args.new_tokens)]
        command += ["--spread-s", str(args.spread_s), "--max-batch-size", str(args.max_batch_size)]
        command += ["--model-path", args.model_path]
        output = subprocess.run(command, capture_output=True, text=True, check=False)
        if output.returncode != 0:
            print(f"{design}: failed\n{output.stderr[-2000:]}", file=sys.stderr)
            continue
        for line in output.stdout.splitlines():
            if line.startswith("{"):
                point = json.loads(line)
                key = (design, point["concurrency"], point["arrivals"])
                results[key] = {**point, **summarise(point)}

    print(
        f"{'design':8} {'compute':14} {'conc':>4} {'arrivals':9} {'tok/s':>7} {'vs naive':>8} "
        f"{'ttft p50':>8} {'ttft p95':>8} {'lat p50':>8} {'lat p95':>8} "
        f"{'tokens':>6} {'rss MiB':>7}"
    )
    for (design, count, pattern), r in results.items():
        naive = results.get(("naive", count, pattern))
        speedup = f"{r['tok_s'] / naive['tok_s']:.1f}x" if naive else "-"
        print(
            f"{design:8} {r['dtype']:14} {count:>4} {pattern:9} {r['tok_s']:7.1f} {speedup:>8} "
            f"{r['ttft_p50']:8.2f} {r['ttft_p95']:8.2f} {r['lat_p50']:8.2f} {r['lat_p95']:8.2f} "
            f"{r['tokens']:>6} {r['peak_rss_mib']:7.0f}"
        )
    print_targets(results)


def print_targets(results: dict[tuple[str, int, str], dict[str, Any]]) -> None:
    """The issue's targets, from this run's figures."""

    def get(design: str, count: int, pattern: str) -> dict[str, Any] | None:
        return results.get((design, count, pattern))

    lone_engine, lone_naive = get("engine", 1, "alone"), get("naive", 1, "alone")
    print("\ntargets (engine):")
    if lone_engine and lone_naive:
        ratio = lone_engine["tok_s"] / lone_naive["tok_s"]
        print(f"  lone request: {ratio:.2f}x naive tokens/s (target >= 2)")
    lone_llamacpp = get("llamacpp", 1, "alone")
    if lone_engine and lone_llamacpp:
        ratio = lone_engine["tok_s"] / lone_llamacpp["tok_s"]
        print(f"  lone request: {ratio:.2f}x llama.cpp tokens/s")
    if lone_engine:
        print(f"  lone time to first token p50: {lone_engine['ttft_p50']:.2f} s (target <= 0.3)")
    for pattern in ("burst", "staggered"):
        for count, target in ((8, 6), (16, 8)):
            at, naive = get("engine", count, pattern), get("naive", count, pattern)
            if at and naive:
                ratio = at["tok_s"] / naive["tok_s"]
                print(f"  {count} {pattern}: {ratio:.1f}x naive (target >= {target}x)")
        at8, manager8 = get("engine", 8, pattern), get("manager", 8, pattern)
        if at8 and manager8:
            print(f"  8 {pattern}: {at8['tok_s'] / manager8['tok_s']:.1f}x the manager")
        if at8 and lone_engine:
            ratio = at8["ttft_p95"] / lone_engine["ttft_p95"]
            print(f"  ttft p95 at 8 {pattern} / lone ttft p95: {ratio:.1f} (target <= 3)")
    peak = max((r["peak_rss_mib"] for (d, _, _), r in results.items() if d == "engine"), default=0)
    print(f"  peak RSS {peak:.0f} MiB (target <= 1229, 1.2 GB)")


if __name__ == "__main__":
    main()
