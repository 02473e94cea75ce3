"""Translation between the chat-completions format and the other client APIs.

Upstreams that speak only chat completions can still serve OpenAI's Responses API
(`responses`) and Anthropic's Messages API (`messages`): requests are rewritten into
chat bodies, and chat replies (whole or streamed chunk by chunk) back into the
client's format. Everything here is pure: no I/O, no clock, no configuration; the
gateway supplies ids and timestamps. Each module's docstring says what its
translation cannot carry.
"""
