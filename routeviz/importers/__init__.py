"""Routing that other engines recorded, read into the one schema.

Each format (vLLM, SGLang, SGLang's recorder, Megatron-Core's router trace, plain `.npy`) is an
importer registered under the `routeviz.importers` entry-point group.
"""
