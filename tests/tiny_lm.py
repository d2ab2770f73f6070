"""A tiny causal LM built locally (random weights, a BPE tokenizer trained here) for tests and bench/llm.py:
a real Hugging Face folder, loaded through the same `from_pretrained` code as a real model."""

from __future__ import annotations

from pathlib import Path

import tokenizers
import transformers

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
CORPUS = ["Standard delivery takes 3-5 business days.", "Returns are free within 30 days.",
          "Where is my order?", "How long does shipping take?", "We accept PayPal and cards."] * 20


def build_tiny_model(folder: Path, *, chat_template: bool) -> Path:
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<eos>", "<pad>"],
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(CORPUS, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", eos_token="<eos>",
                                                     pad_token="<pad>")
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_positions=2048, n_embd=32, n_layer=1, n_head=2,
                                     bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                                     pad_token_id=tokenizer.pad_token_id)
    model = transformers.GPT2LMHeadModel(config)
    # Random weights end a greedy generation wherever they happen to rank <eos> first, and which weights a
    # run gets depends on the tests before it: the tests that time the backend (the deadline, the queue)
    # need a model that writes until stopped, so it never writes <eos> itself.
    model.generation_config.suppress_tokens = [tokenizer.eos_token_id]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
