"""The seeds' worked examples, trained end to end."""
import numpy as np
import pytest

import fastmlp
from fastmlp.datasets import abs_shifted, digits, x_squared, xor


@pytest.mark.parametrize("width,seed,epochs", [(8, 0, 500), (8, 1, 500), (8, 2, 500),
                                               (2, 7, 1000)])
def test_xor_relu_net_trained_with_mse(width, seed, epochs):
    # The seeds' [(2, relu), (2, relu), (1, sigmoid)] with MSE often gets stuck: a dead relu
    # leaves a model that cannot separate XOR. With Adam(0.05), 1000 epochs, only seeds 7, 13
    # and 14 of 0-19 reach 100%; CI runs seed 7. Widening both hidden layers to 8 makes 19
    # of seeds 0-19 reach 100% in 500 epochs (all but 17); CI runs seeds 0-2.
    X, y = xor()
    model = fastmlp.MLP(2, [(width, "relu"), (width, "relu"), (1, "sigmoid")], loss="mse",
                        optimizer=fastmlp.Adam(lr=0.05), seed=seed)
    model.fit(X, y, epochs=epochs, batch_size=4, progress=False)
    assert model.evaluate(X, y)["accuracy"] == 1.0
    np.testing.assert_array_equal(model.predict(X), y)


def test_hand_designed_xor_threshold_net():
    # h1 = OR(x1, x2), h2 = AND(x1, x2), y = h1 AND NOT h2, with step units.
    model = fastmlp.MLP(2, [(2, "step"), (1, "step")])
    model.set_weights([(np.array([[1, 1], [1, 1]]), np.array([-0.5, -1.5])),
                       (np.array([[1], [-1]]), np.array([-0.5]))])
    X, y = xor()
    np.testing.assert_array_equal(model.predict(X), y)
    np.testing.assert_array_equal(model.forward(X)[:, 0], y)
    with pytest.raises(ValueError, match="step"):
        model.fit(X, y)


def test_x_squared_regression():
    # x ~ 5 N(0,1), y = x^2 + N(0,1), 100 samples, [(8,relu),(8,relu),(1,identity)], Adam 0.1.
    X, y = x_squared(100, seed=0)
    model = fastmlp.MLP(1, [(8, "relu"), (8, "relu"), (1, "identity")],
                        optimizer=fastmlp.Adam(lr=0.1), seed=0)
    history = model.fit(X, y, epochs=1000, batch_size=100, progress=False)
    assert history.loss[0] > 100  # starts far off: y reaches ~400
    # The loss (with the seeds' 1/2) ends near the ~0.6 the slides report; the noise alone
    # has 1/2 E[n^2] = 0.5, so a fit much below that would be memorising noise.
    assert 0.3 < model.loss(X, y) < 0.8


def test_abs_x_minus_one_with_two_relus():
    # |x - 1| = relu(x - 1) + relu(1 - x): two relu units suffice exactly. About half of all
    # initialisations start with a unit dead on the data and stall (seeds 0, 2, 3 of 0-5 do);
    # seed 1 does not, and fits to a mean squared error below 1e-3.
    X, y = abs_shifted()
    model = fastmlp.MLP(1, [(2, "relu"), (1, "identity")], optimizer=fastmlp.Adam(lr=0.01),
                        seed=1)
    model.fit(X, y, epochs=1000, batch_size=32, progress=False)
    assert np.mean((model.predict(X) - y) ** 2) < 1e-3


def test_digits_reach_97_percent_held_out():
    from sklearn.model_selection import train_test_split
    X, y = digits()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    model = fastmlp.MLP(64, [(128, "relu"), (10, "softmax")], seed=0)
    model.fit(X_train, y_train, epochs=30, batch_size=32, progress=False,
              validation_data=(X_test, y_test))
    assert model.evaluate(X_test, y_test)["accuracy"] >= 0.97
    assert np.mean(model.predict(X_test) == y_test) >= 0.97
