import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mixtral_dir(tmp_path_factory):
    """A tiny random Mixtral checkpoint with a word-level tokenizer, saved with save_pretrained."""
    from routeviz.testing import save_tiny_checkpoint, tiny_mixtral_config

    return save_tiny_checkpoint(tiny_mixtral_config(), tmp_path_factory.mktemp("mixtral"))


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"
