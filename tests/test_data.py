"""Loading user files, checking data against the spec, and preparing it for the loss."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pandas as pd
import pytest
import specs

from suite import data
from suite.errors import DataError
from suite.spec import DataSource, Spec

# 2 inputs -> 4 relu -> 3 outputs (the activation the loss needs), float32, batches of 32;
# the data source (data=) given by each test
make_spec = partial(specs.make_spec, sizes=(2, 4, 3), hidden="relu",
                    loss="sparse_categorical_crossentropy", optimizer="sgd", name="spec",
                    dtype="float32", batch_size=32, standardize=False)


def error_text(spec: Spec, source: DataSource | None = None) -> str:
    with pytest.raises(DataError) as caught:
        data.load_for(spec, source)
    return str(caught.value)


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame({"a": [0.5, 1.5, -2.0, 3.0, 4.25],
                         "b": [1, 2, 3, 4, 5],
                         "label": [0, 2, 1, 2, 0]})


# ---------------------------------------------------------------------------- round trips


def test_csv_round_trip(tmp_path, table):
    path = str(tmp_path / "d.csv")
    table.to_csv(path, index=False)
    prepared = data.load_for(make_spec(data=path, target="label"))
    assert np.array_equal(prepared.x, table[["a", "b"]].to_numpy(np.float32))
    assert prepared.x.dtype == np.float32 and prepared.x.shape == (5, 2)
    assert prepared.y.tolist() == [0, 2, 1, 2, 0] and prepared.y.dtype == np.int64
    described = prepared.description
    assert described["source"] == path and described["name"] == path
    assert described["target"] == "label" and described["n_classes"] == 3


def test_parquet_round_trip_with_the_target_given_apart_from_the_spec(tmp_path, table):
    path = str(tmp_path / "d.parquet")
    table.to_parquet(path)
    spec = make_spec(data=path, loss="mse", units=1, dtype="float64")
    prepared = data.load_for(spec, DataSource(path, target="a"))
    assert np.array_equal(prepared.x, table[["b", "label"]].to_numpy(np.float64))
    assert prepared.y.shape == (5, 1) and prepared.y.dtype == np.float64
    assert prepared.y[:, 0].tolist() == table["a"].tolist()


def test_npz_round_trip_with_several_outputs(tmp_path):
    x = np.arange(12.0).reshape(6, 2)
    y = np.linspace(-1.0, 1.0, 18).reshape(6, 3)
    path = str(tmp_path / "d.npz")
    np.savez(path, x=x, y=y)
    prepared = data.load_for(make_spec(data=path, loss="huber", units=3, dtype="float64"))
    assert np.array_equal(prepared.x, x) and np.array_equal(prepared.y, y)
    assert prepared.description["n_samples"] == 6 and prepared.description["n_outputs"] == 3


def test_fewer_rows_than_one_batch_are_fine(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x=np.ones((3, 2)), y=np.array([0, 1, 0]))
    assert data.load_for(make_spec(data=path)).x.shape == (3, 2)


# ---------------------------------------------------------------------------- file errors


def test_missing_target_lists_the_columns(tmp_path, table):
    path = str(tmp_path / "d.csv")
    table.to_csv(path, index=False)
    text = error_text(make_spec(data=path))
    assert f"data file '{path}'" in text and "columns: a, b, label" in text
    assert "--target" in text
    text = error_text(make_spec(data=path, target="lable"))
    assert "no target column 'lable'; columns: a, b, label" in text and "'label'?" in text


def test_non_numeric_feature_column_is_named(tmp_path, table):
    path = str(tmp_path / "d.csv")
    table.assign(colour=["red", "red", "blue", "red", "red"]).to_csv(path, index=False)
    text = error_text(make_spec(data=path, input_dim=3, target="label"))
    assert "column 'colour' is not numeric" in text and "row 0 holds 'red'" in text


def test_non_numeric_target_column_is_named(tmp_path, table):
    path = str(tmp_path / "d.csv")
    table.assign(label=["cat", "dog", "cat", "cat", "dog"]).to_csv(path, index=False)
    text = error_text(make_spec(data=path, target="label"))
    assert "target column 'label' is not numeric" in text and "integers 0, 1" in text


def test_npz_arrays_must_be_numbers(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x=np.array([["a", "b"]]), y=np.zeros(1))
    assert "array 'x' has dtype <U1; expected numbers" in error_text(make_spec(data=path))
    np.save(tmp_path / "single.npy", np.ones(3))
    (tmp_path / "single.npy").rename(path)
    assert "cannot read the file (an .npy array, not an NPZ archive)" in error_text(
        make_spec(data=path))


def test_npz_without_x_and_y_lists_the_keys_found(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, features=np.ones((3, 2)), labels=np.zeros(3))
    text = error_text(make_spec(data=path))
    assert "needs arrays 'x' and 'y'; found: 'features', 'labels'" in text


def test_npz_with_rows_that_do_not_match(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x=np.ones((4, 2)), y=np.zeros(3))
    assert "x has 4 rows but y has 3" in error_text(make_spec(data=path))


@pytest.mark.parametrize("name, expected", [
    ("gone.csv", "'{path}': file not found"),
    ("notes.txt", "'{path}': unknown file type '.txt'"),
    ("bad.parquet", "'{path}': cannot read the file"),
    ("bad.npz", "'{path}': cannot read the file"),
    ("bad.csv", "'{path}': cannot read the file"),
])
def test_unusable_files_say_why_and_list_the_builtin_sets(tmp_path, name, expected):
    path = tmp_path / name
    if name != "gone.csv":
        path.write_bytes(b"\xff\xfe\x00 not data at all \x00\x81" if name.startswith("bad")
                         else b"some notes")
    text = error_text(make_spec(data=str(path), target="label"))
    assert expected.format(path=path) in text
    assert "regression, blobs, spirals, random, iris, wine, breast_cancer, digits" in text


def test_a_name_that_is_neither_a_set_nor_a_file():
    text = error_text(make_spec(data="blobz"))
    assert "no built-in dataset or file named 'blobz'" in text and "'blobs'?" in text
    assert "spirals, random, iris" in text


# ---------------------------------------------------------------------------- spec checks


def test_feature_count_must_match_input_dim():
    text = error_text(make_spec(data="wine", input_dim=64))
    assert "data 'wine': 13 features, but the spec's input_dim is 64" in text
    assert "set input_dim = 13" in text


def test_more_classes_than_output_units():
    text = error_text(make_spec(data="digits", input_dim=64, units=3))
    assert "data 'digits'" in text and "10 classes" in text and "3 units" in text
    assert "set units = 10" in text


def test_non_integer_labels_for_a_class_loss(tmp_path, table):
    path = str(tmp_path / "d.csv")
    table.assign(label=[0, 1, 0.5, 1, 0]).to_csv(path, index=False)
    text = error_text(make_spec(data=path, target="label"))
    assert "row 2, column 'label': non-integer label 0.5" in text
    assert "sparse_categorical_crossentropy" in text


def test_negative_labels_for_a_class_loss(tmp_path, table):
    path = str(tmp_path / "d.csv")
    table.assign(label=[0, 1, 1, -1, 0]).to_csv(path, index=False)
    assert "row 3, column 'label': negative label -1" in error_text(
        make_spec(data=path, target="label"))


def test_values_outside_unit_interval_for_binary_crossentropy(tmp_path, table):
    path = str(tmp_path / "d.csv")
    table.assign(label=[0.0, 0.2, 1.5, 1.0, 0.0]).to_csv(path, index=False)
    text = error_text(make_spec(data=path, units=1, loss="binary_crossentropy", target="label"))
    assert "row 2, column 'label': value 1.5 outside [0, 1]" in text


def test_three_classes_for_binary_crossentropy(tmp_path, table):
    path = str(tmp_path / "d.csv")
    table.to_csv(path, index=False)
    text = error_text(make_spec(data=path, units=1, loss="binary_crossentropy", target="label"))
    assert "labels 0..2 (3 classes), but binary_crossentropy" in text
    assert "softmax output of 3 units" in text


def test_target_columns_must_match_output_units(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x=np.ones((4, 2)), y=np.ones((4, 2)))
    assert "2 columns (shape (4, 2)), but the output layer has 3 units" in error_text(
        make_spec(data=path, loss="mse", units=3))


def test_one_target_column_for_several_real_outputs(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x=np.ones((4, 2)), y=np.ones(4))
    text = error_text(make_spec(data=path, loss="mse", units=3))
    assert "one target column, but the output layer has 3 units" in text


def test_one_hot_rows_must_sum_to_one(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x=np.ones((3, 2)), y=np.array([[1.0, 0, 0], [0, 0.5, 0.4], [0, 0, 1]]))
    text = error_text(make_spec(data=path, loss="categorical_crossentropy"))
    assert "row 1" in text and "summing to 0.9" in text


def test_nan_in_features_gives_count_and_first_place(tmp_path, table):
    path = str(tmp_path / "d.csv")
    table.assign(b=[1, 2, None, 4, np.inf]).to_csv(path, index=False)
    text = error_text(make_spec(data=path, target="label"))
    assert "row 2, column 'b': nan is the first of 2 NaN or infinite values in the features" \
        in text


def test_infinity_in_target(tmp_path):
    path = str(tmp_path / "d.npz")
    y = np.zeros((4, 2))
    y[3, 1] = -np.inf
    np.savez(path, x=np.ones((4, 2)), y=y)
    text = error_text(make_spec(data=path, loss="mse", units=2))
    assert "row 3, column 'y[:, 1]': -inf is the first of 1 NaN or infinite values in the " \
           "target" in text


def test_empty_data(tmp_path, table):
    csv = str(tmp_path / "d.csv")
    table.iloc[:0].to_csv(csv, index=False)
    assert f"data file '{csv}': no rows" in error_text(make_spec(data=csv, target="label"))
    npz = str(tmp_path / "d.npz")
    np.savez(npz, x=np.ones((0, 2)), y=np.zeros(0))
    assert f"data file '{npz}': no rows" in error_text(make_spec(data=npz))


# ---------------------------------------------------------------------------- preparation


def test_class_indices_are_int64_whatever_the_run_dtype(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x=np.ones((3, 2)), y=np.array([2.0, 0.0, 1.0]))
    prepared = data.load_for(make_spec(data=path, dtype="float64"))
    assert prepared.y.dtype == np.int64 and prepared.y.tolist() == [2, 0, 1]


def test_one_hot_from_labels_and_kept_when_given(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x=np.ones((3, 2)), y=np.array([2, 0, 1]))
    prepared = data.load_for(make_spec(data=path, loss="categorical_crossentropy"))
    assert prepared.y.dtype == np.float32
    assert prepared.y.tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    soft = np.array([[0.2, 0.3, 0.5], [1.0, 0, 0], [0, 0.5, 0.5]])
    np.savez(path, x=np.ones((3, 2)), y=soft)
    prepared = data.load_for(make_spec(data=path, loss="categorical_crossentropy", dtype="float64"))
    assert np.array_equal(prepared.y, soft)


def test_binary_targets_become_one_column(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x=np.ones((3, 2)), y=np.array([0.0, 0.25, 1.0]))
    prepared = data.load_for(make_spec(data=path, units=1, loss="binary_crossentropy"))
    assert prepared.y.shape == (3, 1) and prepared.y.dtype == np.float32
    assert prepared.y[:, 0].tolist() == [0.0, 0.25, 1.0]
    assert prepared.description["target_kind"] == "binary"


def test_builtin_classes_meet_one_output_per_class_as_one_hot():
    prepared = data.load_for(make_spec(data="blobs", units=3, loss="mse"), n_samples=6)
    assert prepared.y.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]] * 2
    prepared = data.load_for(make_spec(data="breast_cancer", input_dim=30, units=1,
                                       loss="binary_crossentropy"))
    assert prepared.y.shape == (569, 1) and set(prepared.y[:, 0].tolist()) == {0.0, 1.0}


def test_standardization_in_float64_with_constant_features_centred(tmp_path):
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(1e4, 3.0, 50), np.full(50, 0.1), rng.uniform(0, 1, 50)])
    path = str(tmp_path / "d.npz")
    np.savez(path, x=x, y=np.arange(50) % 3)
    prepared = data.load_for(make_spec(data=path, input_dim=3, standardize=True))
    expected = (x - x.mean(0)) / np.array([x[:, 0].std(), 1.0, x[:, 2].std()])
    expected[:, 1] = 0.0
    assert prepared.x.dtype == np.float32
    assert np.array_equal(prepared.x, expected.astype(np.float32))
    assert np.allclose(prepared.x[:, [0, 2]].mean(0), 0, atol=1e-6)
    assert np.allclose(prepared.x[:, [0, 2]].std(0), 1, atol=1e-6)
    assert prepared.scale[1] == 1.0 and prepared.description["standardized"] is True
    raw = data.load_for(make_spec(data=path, input_dim=3, dtype="float64"))
    assert np.array_equal(raw.x, x) and raw.description["standardized"] is False


def test_description_is_json_and_its_digest_follows_the_data():
    spec = make_spec(data="iris", input_dim=4)
    described = data.load_for(spec).description
    assert json.loads(json.dumps(described)) == described
    assert described == {**described, "name": "iris", "source": "scikit-learn",
                         "n_samples": 150, "n_features": 4, "target_kind": "class_index",
                         "n_outputs": 3, "n_classes": 3, "standardized": False}
    assert len(described["sha256"]) == 16
    assert data.load_for(spec).description["sha256"] == described["sha256"]
    standardized = data.load_for(spec, DataSource("iris", standardize=True)).description
    assert standardized["sha256"] != described["sha256"]
