"""Tiny random checkpoints for tests, benchmarks and trying routeviz without downloads.

`save_tiny_checkpoint(config_cls, out_dir, **overrides)` builds a small random model of any
transformers family, pairs it with a word-level tokenizer trained here, and saves both with
`save_pretrained`, so `AutoTokenizer` / `AutoModel*` load the directory offline.
"""

from __future__ import annotations

from pathlib import Path

WORDS = ("the a of to and in is it that for on with as was def return class import from "
         "self if else for while try except print x y z 0 1 2 ( ) : , . = + - * / [ ] { } "
         "model expert token route layer gate").split()


def word_tokenizer(words=WORDS, padding_side: str = "right"):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(words)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>", padding_side=padding_side)


def tiny_mixtral_config(**overrides):
    from transformers import MixtralConfig

    params = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                  num_experts_per_tok=2, max_position_embeddings=128, pad_token_id=0)
    params.update(overrides)
    return MixtralConfig(**params)


def save_tiny_checkpoint(config, out_dir, model_class=None, seed: int = 0,
                         padding_side: str = "right") -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    tokenizer = word_tokenizer(padding_side=padding_side)
    if getattr(config, "vocab_size", 0) < len(tokenizer):
        config.vocab_size = len(tokenizer)
    model_class = model_class or AutoModelForCausalLM
    # Auto* classes build from a config with from_config; concrete model classes are called
    model = (model_class.from_config(config) if hasattr(model_class, "from_config")
             else model_class(config))
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
