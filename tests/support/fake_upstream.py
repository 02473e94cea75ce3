"""A real HTTP server that plays an OpenAI-compatible upstream, faults included.

The upstream `model` name in the request picks the behaviour:
  ok               a normal reply (or stream)
  fail500          always HTTP 500
  flaky-N          HTTP 503 for the first N calls, then ok
  rate429          HTTP 429 with Retry-After: 1 on the first call, then ok
  rate429-N        HTTP 429 with Retry-After: 1 for the first N calls, then ok
  rate429date-N    the same with Retry-After as an HTTP date (1 to 2 s ahead)
  busy503-N        HTTP 503 with Retry-After: 1 for the first N calls, then ok
  always429        HTTP 429 with Retry-After: 0 on every call
  wait429          HTTP 429 with Retry-After: 3600 (an hour: longer than a client should wait)
  quota429         HTTP 429 insufficient_quota (no Retry-After): waiting will not help
  parallel-N       answers after 50 ms, but HTTP 429 with Retry-After: 1 to a call that
                   arrives while N are in flight (`refused`, `max_in_flight` per model)
  slow-MS          answers after MS milliseconds
  reset-mid-stream a stream that sends two chunks, then drops the connection
  stall            sends nothing for 30 s
  stall-mid-stream two chunks, then silence
  slow-first-byte  waits 1.5 s, then ok
  bad-request      HTTP 400 with an OpenAI error body
  echo-key         HTTP 400 whose error message echoes the request's Authorization header
  no-usage         replies without a usage object (streams too)
  error-event      streams: HTTP 200, then an error event ({"error": ...}) as the first event
  error-mid-stream streams: two chunks, then an error event, then [DONE]
  no-done          streams: a whole reply (finish_reason stop, usage), then EOF without [DONE]
  slow-stream      streams: 0.2 s between chunks
  leak-secret      a reply with an API key in it, streamed three characters a chunk
  exact-usage      reports the prompt tokens as llmops counts them and max_tokens
                   completion tokens: a call's real cost equals its reservation
  tools            calls the request's first tool with {"city": "Paris"} (streamed: the
                   arguments in three pieces); once the last message is a tool result,
                   answers "The tool said: <result>"
It also serves Anthropic's Messages API (POST /v1/messages, models `ok` and
`leak-secret`, whole and streamed) and OpenAI's Responses API natively (POST /v1/responses, models `ok` and
`leak-secret`, whole and streamed, keeping its response ids for previous_response_id).
Every request body received is kept in `received` for assertions.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections import defaultdict

from aiohttp import web

from tests.support.threaded_server import ThreadedServer

REPLY = "The quick brown fox jumps over the lazy dog."
SECRET = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEf"
LEAKY_REPLY = f"Sure, the key is {SECRET} and that is all."
# What a hosted API says about each answer, for the client's SDK to read.
ANSWER_HEADERS = {"x-request-id": "req_fake_0123", "openai-processing-ms": "7",
                  "x-ratelimit-remaining-requests": "4999", "x-upstream-internal": "not for clients"}


def _chat_reply(model: str, usage: bool = True) -> dict:
    data = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}],
    }
    if usage:
        data["usage"] = {"prompt_tokens": 21, "completion_tokens": 10, "total_tokens": 31}
    return data


def _chunk(model: str, content: str | None, finish: str | None = None, logprobs: bool = False) -> bytes:
    delta = {} if content is None else {"content": content}
    choice: dict = {"index": 0, "delta": delta, "finish_reason": finish}
    if logprobs and content:
        choice["logprobs"] = {"content": [{"token": content, "logprob": -0.25, "bytes": list(content.encode()),
                                           "top_logprobs": []}]}
    data = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [choice]}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


class FakeUpstream(ThreadedServer):
    def __init__(self, port: int, ssl_context: ssl.SSLContext | None = None):
        # ssl_context given: the upstream speaks https, as hosted APIs do; large prompts pass.
        super().__init__(port, ssl_context=ssl_context, client_max_size=64 * 1024 * 1024)
        self.base_url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/v1"
        self.received: list[dict] = []
        self.calls: dict[str, int] = defaultdict(int)
        self.stream_cancelled = threading.Event()
        self.load = 0  # what GET /metrics reports as vLLM's running requests
        self.response_ids: set[str] = set()  # Responses API ids it made
        self.in_flight: dict[str, int] = defaultdict(int)
        self.max_in_flight: dict[str, int] = defaultdict(int)
        self.refused: dict[str, int] = defaultdict(int)  # 429s of parallel-N

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/metrics", self._metrics)

    def reset(self) -> None:
        self.received.clear()
        self.calls.clear()
        self.stream_cancelled.clear()
        self.max_in_flight.clear()
        self.refused.clear()

    # -- behaviours ------------------------------------------------------------------
    async def _fault(self, model: str) -> web.StreamResponse | None:
        n = self.calls[model]
        if model == "fail500":
            return web.json_response({"error": {"message": "internal"}}, status=500)
        if model.startswith("flaky-") and n <= int(model.split("-")[1]):
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        if model == "rate429" and n == 1:
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "1"})
        if model.startswith(("rate429-", "rate429date-", "busy503-")) and n <= int(model.split("-")[1]):
            status = 503 if model.startswith("busy503") else 429
            after = "1"
            if model.startswith("rate429date"):
                from email.utils import formatdate

                after = formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1 to 2 s ahead
            return web.json_response({"error": {"message": "slow down"}}, status=status, headers={"Retry-After": after})
        if model in ("always429", "wait429"):
            after = "0" if model == "always429" else "3600"
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": after})
        if model == "quota429":
            return web.json_response({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                                                "code": "insufficient_quota"}}, status=429)
        if model.startswith("parallel-"):
            if self.in_flight[model] >= int(model.split("-")[1]):
                self.refused[model] += 1
                return web.json_response({"error": {"message": "too many in flight"}}, status=429,
                                         headers={"Retry-After": "1"})
            self.in_flight[model] += 1
            self.max_in_flight[model] = max(self.max_in_flight[model], self.in_flight[model])
            try:
                await asyncio.sleep(0.05)
            finally:
                self.in_flight[model] -= 1
        if model.startswith("slow-") and model[5:].isdigit():
            await asyncio.sleep(int(model[5:]) / 1000)
        if model == "echo-key":
            return None  # answered by the handler, which has the request's headers
        if model == "bad-request":
            return web.json_response(
                {"error": {"message": "max_tokens is too large", "type": "invalid_request_error",
                           "param": "max_tokens", "code": None}}, status=400)
        if model == "not-an-object":
            return web.json_response([1, 2, 3])
        if model == "stall":
            await asyncio.sleep(30)
        if model == "slow-first-byte":
            await asyncio.sleep(1.5)
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(body)
        model = body.get("model", "ok")
        self.calls[model] += 1
        fault = await self._fault(model)
        if fault is not None:
            return fault
        if model == "echo-key":
            said = request.headers.get("Authorization", "")
            return web.json_response({"error": {"message": f"Incorrect API key provided: {said}",
                                                "type": "invalid_request_error", "param": None,
                                                "code": "invalid_api_key", "sent": said}}, status=400)
        if model == "tools":
            return await self._tools(request, body)
        if not body.get("stream"):
            reply = _chat_reply(model, usage=model != "no-usage")
            if model == "leak-secret":
                reply["choices"][0]["message"]["content"] = LEAKY_REPLY
            if model == "exact-usage":
                from llmops import tokens

                prompt = tokens.count_messages(body["messages"], model)
                done = body["max_tokens"]
                reply["usage"] = {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}
            return web.json_response(reply, headers=ANSWER_HEADERS)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **ANSWER_HEADERS})
        await resp.prepare(request)
        if model == "error-event":
            error = {"error": {"message": "The server had an error while processing your request",
                               "type": "server_error", "code": 500}}
            await resp.write(b"data: " + json.dumps(error).encode() + b"\n\ndata: [DONE]\n\n")
            return resp
        words = REPLY.split(" ")
        if model == "leak-secret":
            words = [LEAKY_REPLY[i:i + 3] for i in range(0, len(LEAKY_REPLY), 3)]
        try:
            for i, word in enumerate(words):
                piece = word if model == "leak-secret" else word + (" " if i < len(words) - 1 else "")
                await resp.write(_chunk(model, piece, logprobs=bool(body.get("logprobs"))))
                if i == 1 and model == "bad-chunk":
                    await resp.write(b"data: {not json\n\n")
                if i == 1 and model == "reset-mid-stream":
                    request.transport.abort()
                    return resp
                if i == 1 and model == "error-mid-stream":
                    error = {"error": {"message": "overloaded", "type": "server_error", "code": 503}}
                    await resp.write(b"data: " + json.dumps(error).encode() + b"\n\ndata: [DONE]\n\n")
                    return resp
                if i == 1 and model == "stall-mid-stream":
                    await asyncio.sleep(30)
                if model == "slow-stream":
                    await asyncio.sleep(0.2)
            await resp.write(_chunk(model, None, "stop"))
            if (body.get("stream_options") or {}).get("include_usage") and model != "no-usage":
                usage = {"prompt_tokens": 21, "completion_tokens": len(words), "total_tokens": 21 + len(words)}
                data = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
                        "choices": [], "usage": usage}
                await resp.write(b"data: " + json.dumps(data).encode() + b"\n\n")
            if model != "no-done":
                await resp.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.stream_cancelled.set()
            raise
        return resp

    async def _tools(self, request: web.Request, body: dict) -> web.StreamResponse:
        last = body["messages"][-1]
        usage = {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}
        base = {"id": "chatcmpl-tools", "created": 1, "model": "tools"}
        if last.get("role") == "tool":
            content = last["content"] if isinstance(last["content"], str) else json.dumps(last["content"])
            message = {"role": "assistant", "content": f"The tool said: {content}"}
            finish = "stop"
            pieces = [{"content": "The tool said: "}, {"content": content}]
        else:
            name = body["tools"][0]["function"]["name"]
            call = {"id": "call_weather_1", "type": "function", "function": {"name": name, "arguments": '{"city": "Paris"}'}}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
            pieces = [
                {"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                 "function": {"name": name, "arguments": ""}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
            ]
        if not body.get("stream"):
            return web.json_response({**base, "object": "chat.completion", "usage": usage,
                                      "choices": [{"index": 0, "message": message, "finish_reason": finish}]})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunks = [{"index": 0, "delta": delta, "finish_reason": None} for delta in pieces]
        chunks.append({"index": 0, "delta": {}, "finish_reason": finish})
        for choice in chunks:
            data = {**base, "object": "chat.completion.chunk", "choices": [choice]}
            await resp.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        data = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
        await resp.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(body)
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.response_ids:
            return web.json_response({"error": {"message": f"Previous response with id '{previous}' not found.",
                                                "type": "invalid_request_error", "param": "previous_response_id",
                                                "code": "previous_response_not_found"}}, status=400)
        response_id = f"resp_upstream_{len(self.response_ids)}"
        self.response_ids.add(response_id)
        text = LEAKY_REPLY if body.get("model") == "leak-secret" else REPLY
        message = {"id": "msg_up", "type": "message", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}
        response = {"id": response_id, "object": "response", "created_at": 1, "status": "completed",
                    "model": body.get("model"), "output": [message], "parallel_tool_calls": True, "tool_choice": "auto",
                    "tools": [], "previous_response_id": previous, "error": None, "incomplete_details": None,
                    "instructions": body.get("instructions"), "metadata": {}, "temperature": 1.0, "top_p": 1.0,
                    "usage": {"input_tokens": 17, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 10,
                              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 27}}
        if not body.get("stream"):
            return web.json_response(response, headers=ANSWER_HEADERS)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **ANSWER_HEADERS})
        await resp.prepare(request)
        pieces = [text[i:i + 3] for i in range(0, len(text), 3)]
        shell = {**response, "status": "in_progress", "output": [], "usage": None}
        empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        events = [
            {"type": "response.created", "response": shell},
            {"type": "response.in_progress", "response": shell},
            {"type": "response.output_item.added", "output_index": 0,
             "item": {**message, "status": "in_progress", "content": []}},
            {"type": "response.content_part.added", "output_index": 0, "content_index": 0, "item_id": "msg_up",
             "part": empty_part},
            *({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "msg_up",
               "delta": piece, "logprobs": []} for piece in pieces),
            {"type": "response.output_text.done", "output_index": 0, "content_index": 0, "item_id": "msg_up",
             "text": text, "logprobs": []},
            {"type": "response.content_part.done", "output_index": 0, "content_index": 0, "item_id": "msg_up",
             "part": {**empty_part, "text": text}},
            {"type": "response.output_item.done", "output_index": 0, "item": message},
            {"type": "response.completed", "response": response},
        ]
        for number, event in enumerate(events):
            event["sequence_number"] = number
            await resp.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        return resp

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append({**body, "_path": "/v1/messages", "_api_key": request.headers.get("x-api-key")})
        text = LEAKY_REPLY if "leak-secret" in str(body.get("model")) else REPLY
        usage = {"input_tokens": 19, "output_tokens": 10, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        message = {"id": "msg_upstream", "type": "message", "role": "assistant", "model": body.get("model"),
                   "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": usage}
        if not body.get("stream"):
            return web.json_response(message, headers={"request-id": "req_anthropic_0123"})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "request-id": "req_anthropic_0123"})
        await resp.prepare(request)
        events = [
            ("message_start", {"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                                                    "usage": {**usage, "output_tokens": 1}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("ping", {"type": "ping"}),
            *(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": text[i:i + 3]}})
              for i in range(0, len(text), 3)),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": 10}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        for name, data in events:
            await resp.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        return resp

    async def _metrics(self, request: web.Request) -> web.Response:
        text = (f'vllm:num_requests_running{{model_name="fake"}} {self.load}\n'
                f'vllm:num_requests_waiting{{model_name="fake"}} 0\n')
        return web.Response(text=text, content_type="text/plain")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(body)
        if body.get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for text, finish in ((REPLY, None), ("", "stop")):
                chunk = {"id": "cmpl-fake", "object": "text_completion", "created": 1, "model": body["model"],
                         "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]}
                await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            return resp
        return web.json_response({
            "id": "cmpl-fake", "object": "text_completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "text": REPLY, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 10, "total_tokens": 15},
        })

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response({
            "object": "list", "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(inputs))],
            "usage": {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)},
        })
