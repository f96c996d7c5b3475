"""The typed model metadata: round trips, validation, and the shipped files read through it."""

from __future__ import annotations

import pytest

from emoar.classify import read_model_info
from emoar.modelmeta import ModelMeta, ModelMetadataError
from emoar.models import list_models


def test_shipped_files_round_trip_exactly() -> None:
    for m in list_models():
        info = read_model_info(m.path)
        assert info.meta.to_props() == info.metadata, m.name  # nothing lost, nothing invented
        assert ModelMeta.from_props(info.metadata) == info.meta
        assert info.meta.labels == info.labels and info.meta.ood_output == info.ood_output


def test_extra_keys_survive_and_with_extra_adds() -> None:
    meta = ModelMeta(name="m", labels=("a", "b"), input_size=(48, 48), mean=0.5, std=0.25)
    props = {**meta.to_props(), "other.tool": "x", "emoar.weight_storage": "fp16"}
    back = ModelMeta.from_props(props)
    assert back.extra == {"other.tool": "x", "emoar.weight_storage": "fp16"} and back.to_props() == props
    assert back.with_extra(quantization="int8").to_props()["emoar.quantization"] == "int8"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"emoar.labels": "[]"}, "non-empty list"),
        ({"emoar.labels": "not json"}, "corrupt emoar metadata"),
        ({"emoar.std": "0"}, "invalid input size or std"),
        ({"emoar.input_size": "[0, 48]"}, "invalid input size"),
        ({"emoar.ood_threshold": "1.5"}, "ood_threshold"),
        ({"emoar.builtin_tta": "crops"}, "builtin_tta must be one of none, flip"),
    ],
)
def test_invalid_metadata_is_a_clear_error(change: dict[str, str], message: str) -> None:
    props = ModelMeta(name="m", labels=("a",), input_size=(48, 48), mean=0.5, std=0.25).to_props()
    with pytest.raises(ModelMetadataError, match=message):
        ModelMeta.from_props({**props, **change}, source="x.onnx")


def test_missing_keys_name_them() -> None:
    with pytest.raises(
        ModelMetadataError, match=r"x.onnx: model metadata is missing emoar.labels, emoar.input_size"
    ):
        ModelMeta.from_props({"emoar.mean": "0.5", "emoar.std": "0.2"}, source="x.onnx")
