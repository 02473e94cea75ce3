"""What each governance step costs on the gateway's hot path, per request, in process.

    python benchmarks/bench_hot_path.py [--n 20000]

Steps, as the gateway runs them for one chat call on a virtual key with rpm, tpm and a
budget: key lookup (cache hit), input guardrails, prompt token count and budget
reservation (admit), tokens and cost of the reply (account), settle, the ledger row.
Figures are microseconds of CPU per call (median of 5 rounds); the whole request also
pays HTTP parsing and the upstream call, which `bench_gateway.py` measures end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from llmops.settings import configure_offline_tokenizers

configure_offline_tokenizers()

BODY = {"model": "bench-model", "max_tokens": 32, "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarize: the quick brown fox jumps over the lazy dog."}]}
USAGE = {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}


def per_call(fn, n: int) -> float:
    rounds = []
    for _ in range(5):
        t = time.process_time()
        for _ in range(n):
            fn()
        rounds.append((time.process_time() - t) / n * 1e6)
    return statistics.median(rounds)


async def main(n: int) -> None:
    from llmops.gateway.call import Call
    from llmops.gateway.config import parse_config
    from llmops.gateway.services import Services

    tmp = tempfile.mkdtemp()
    config = parse_config({
        "models": [{"name": "bench-model", "deployments": [
            {"provider": "openai", "model": "gpt-4o-mini", "api_base": "http://127.0.0.1:9/v1"}]}],
        "database_url": f"sqlite:///{tmp}/hot.db", "ledger": {"spill_dir": f"{tmp}/spill"}})
    services = Services(config)
    await services.start()
    key_text, key = services.governance.keys.create("bench", rpm=10**9, tpm=10**12, budget=1e9)
    scope = {"headers": [(b"authorization", f"Bearer {key_text}".encode())]}
    deployment = services.router.all_deployments()[0]

    # Async steps are timed inside the loop with a tight await loop.
    async def timed_async(make, rounds=5):
        out = []
        for _ in range(rounds):
            t = time.process_time()
            for _ in range(n):
                await make()
            out.append((time.process_time() - t) / n * 1e6)
        return statistics.median(out)

    results = {}
    results["key lookup (cache hit)"] = await timed_async(lambda: services.authenticate(scope))

    def guard(body):
        return services.check_input({**body, "messages": list(body["messages"])}, Call(endpoint="chat"))

    results["input guardrails (short prompt)"] = await timed_async(lambda: guard(BODY))
    long_body = {**BODY, "messages": [{"role": "user", "content": ("The council approved a budget of 2.4bn. " * 26)[:1024]}]}
    results["input guardrails (1 KB prompt)"] = await timed_async(lambda: guard(long_body))

    async def admit_settle():
        call = Call(endpoint="chat", model="bench-model")
        res = await services.admit(key, call, BODY)
        call.input_tokens, call.output_tokens, call.cost = 25, 15, 1e-5
        await services.settle(res, call)

    results["admit + settle (count, reserve, settle)"] = await timed_async(admit_settle)
    results["output guardrails (reply)"] = await timed_async(
        lambda: services.check_output("/chat/completions", {"choices": [{"message": {"content":
            "This is a fixed reply from the fake upstream used for gateway benchmarks."}}]}, Call(endpoint="c")))
    results["tokens and cost of the reply"] = per_call(
        lambda: services.account(Call(endpoint="c", model="bench-model"), deployment, BODY, USAGE, []), n)
    results["ledger row (build and queue)"] = per_call(lambda: services.governance.record(Call(endpoint="c").ledger_row()), n)
    await services.stop()
    total = sum(v for k, v in results.items() if "1 KB" not in k)
    for name, us in results.items():
        print(f"{name:42s} {us:8.1f} us")
    print(f"{'governance per request (short prompt)':42s} {total:8.1f} us")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    asyncio.run(main(ap.parse_args().n))
