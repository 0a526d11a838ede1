"""Built-in datasets: shapes follow the spec, synthetic sets are deterministic from the seed."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import specs

from suite import datasets
from suite.errors import DataError

# 2 inputs -> 4 relu -> 3 outputs (the activation the loss needs), float32
make_spec = partial(specs.make_spec, sizes=(2, 4, 3), hidden="relu",
                    loss="sparse_categorical_crossentropy", optimizer="sgd", name="spec",
                    dtype="float32")


@pytest.mark.parametrize("input_dim, units", [(1, 1), (8, 1), (5, 4)])
def test_regression_shapes_follow_the_spec(input_dim, units):
    made = datasets.make("regression", make_spec(input_dim=input_dim, units=units, loss="mse"),
                         n_samples=50)
    assert made.x.shape == (50, input_dim) and made.x.dtype == np.float64
    assert made.y.shape == (50, units) and made.y.dtype == np.float64
    assert made.source == "synthetic" and made.n_classes is None


def test_regression_is_a_smooth_function_plus_little_noise():
    made = datasets.make("regression", make_spec(sizes=(3, 4, 1), loss="mse"), n_samples=2000)
    assert 0.2 < made.y.std() < 3.0
    # Nearby inputs give nearby targets: a nearest-neighbour guess beats the mean by far.
    x, y = made.x, made.y[:, 0]
    distance = ((x[:1000, None, :] - x[None, 1000:, :]) ** 2).sum(axis=2)
    guess = y[1000:][distance.argmin(axis=1)]
    assert np.mean((guess - y[:1000]) ** 2) < 0.2 * y.var()


@pytest.mark.parametrize("input_dim, units, classes", [(2, 3, 3), (7, 10, 10), (4, 1, 2)])
def test_blobs_have_one_class_per_output_unit(input_dim, units, classes):
    loss = "binary_crossentropy" if units == 1 else "sparse_categorical_crossentropy"
    made = datasets.make("blobs", make_spec(input_dim=input_dim, units=units, loss=loss),
                         n_samples=100)
    assert made.x.shape == (100, input_dim)
    assert made.y.shape == (100,) and made.y.dtype == np.int64
    assert made.n_classes == classes
    assert set(made.y.tolist()) == set(range(classes))
    # Each blob sits around its own centre, well apart from the others.
    centres = np.stack([made.x[made.y == c].mean(axis=0) for c in range(classes)])
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(classes) * 99
    assert gaps.min() > 1.0


def test_spirals_are_two_balanced_classes_in_the_plane():
    made = datasets.make("spirals", make_spec(sizes=(2, 4, 1), loss="binary_crossentropy"))
    assert made.x.shape == (datasets.DEFAULT_SAMPLES, 2)
    assert np.bincount(made.y).tolist() == [500, 500]
    assert np.abs(made.x).max() < 1.2
    # Interleaved: the class means nearly coincide, so no straight line separates them.
    assert np.linalg.norm(made.x[made.y == 0].mean(0) - made.x[made.y == 1].mean(0)) < 0.3
    # Yet the arms stay apart: almost every point's nearest neighbour is of its own class.
    distance = ((made.x[:, None, :] - made.x[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(distance, np.inf)
    assert np.mean(made.y[distance.argmin(axis=1)] == made.y) > 0.95


def test_spirals_refuse_another_input_dim_and_name_the_fix():
    with pytest.raises(DataError) as caught:
        datasets.make("spirals", make_spec(sizes=(3, 4, 1), loss="binary_crossentropy"))
    text = str(caught.value)
    assert "'spirals'" in text and "input_dim is 3" in text and "input_dim = 2" in text


@pytest.mark.parametrize("name", ["regression", "blobs", "spirals", "random"])
def test_synthetic_sets_are_deterministic_from_the_seed(name):
    loss = "mse" if name == "regression" else "binary_crossentropy"
    first = datasets.make(name, make_spec(sizes=(2, 4, 1), loss=loss, seed=3), n_samples=64)
    again = datasets.make(name, make_spec(sizes=(2, 4, 1), loss=loss, seed=3), n_samples=64)
    other = datasets.make(name, make_spec(sizes=(2, 4, 1), loss=loss, seed=4), n_samples=64)
    assert np.array_equal(first.x, again.x) and np.array_equal(first.y, again.y)
    assert not np.array_equal(first.x, other.x)
    explicit = datasets.make(name, make_spec(sizes=(2, 4, 1), loss=loss, seed=0), n_samples=64,
                             seed=3)
    assert np.array_equal(first.x, explicit.x)


def test_random_set_has_one_label_per_output_unit_and_no_structure():
    made = datasets.make("random", make_spec(sizes=(5, 4, 7),
                                             loss="sparse_categorical_crossentropy"),
                         n_samples=4000)
    assert made.x.shape == (4000, 5) and made.n_classes == 7
    assert set(np.unique(made.y)) == set(range(7))
    # standard normal features, unrelated to the labels
    assert abs(made.x.mean()) < 0.05 and abs(made.x.std() - 1) < 0.05
    assert abs(np.corrcoef(made.x[:, 0], made.y)[0, 1]) < 0.1


@pytest.mark.parametrize("name, shape, classes", [
    ("iris", (150, 4), 3),
    ("wine", (178, 13), 3),
    ("breast_cancer", (569, 30), 2),
    ("digits", (1797, 64), 10),
])
def test_sklearn_sets_load_offline_with_their_documented_shapes(name, shape, classes):
    made = datasets.make(name, make_spec(input_dim=shape[1], units=classes))
    assert made.x.shape == shape and made.x.dtype == np.float64
    assert made.y.shape == (shape[0],) and made.y.dtype == np.int64
    assert made.n_classes == classes and made.source == "scikit-learn"
    assert set(made.y.tolist()) == set(range(classes))


def test_unknown_name_lists_the_builtin_sets():
    with pytest.raises(DataError, match="no built-in dataset named 'moons'.*spirals, random, iris"):
        datasets.make("moons", make_spec())
    assert datasets.builtin_names() == list(datasets.BUILTIN)
