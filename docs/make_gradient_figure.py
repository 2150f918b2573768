"""Draw docs/gradients.png: per-layer gradient norms of a deep sigmoid net against the same
net with relu, trained on scikit-learn's 8x8 digits.

    python docs/make_gradient_figure.py        # about a minute on two cores

The sigmoid's derivative is at most 1/4, so each layer the error signal passes back through
shrinks it: the first layers of the sigmoid net get gradients orders of magnitude smaller
than the last, and learn slowly. relu's derivative is 1 where a unit is active.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastmlp  # noqa: E402
from fastmlp.datasets import digits  # noqa: E402

HIDDEN = 6
WIDTH = 32
EPOCHS = 40
HERE = os.path.dirname(os.path.abspath(__file__))


def train(activation, X, y, X_val, y_val):
    layers = [(WIDTH, activation)] * HIDDEN + [(10, "softmax")]
    model = fastmlp.MLP(X.shape[1], layers, optimizer=fastmlp.SGD(lr=0.01, momentum=0.9), seed=0)
    return model.fit(X, y, epochs=EPOCHS, batch_size=32, validation_data=(X_val, y_val),
                     progress=False), model


def main(path=os.path.join(HERE, "gradients.png")):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.model_selection import train_test_split

    X, y = digits()
    X, X_val, y, y_val = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), layout="constrained")
    for row, activation in zip(axes, ("sigmoid", "relu")):
        history, model = train(activation, X, y, X_val, y_val)
        history.plot(ax=row)
        accuracy = model.evaluate(X_val, y_val)["accuracy"]
        ratio = history.grad_norms[:, -1] / history.grad_norms[:, 0]
        row[0].set_title(f"{activation}: loss (validation accuracy {100 * accuracy:.1f}%)")
        row[1].set_title(f"{activation}: ||dW|| per layer (last/first: "
                         f"{np.median(ratio):.2g}x)")
        print(f"{activation}: validation accuracy {accuracy:.4f}, median ratio of last to "
              f"first layer's gradient norm {np.median(ratio):.1f}")
    fig.suptitle(f"{HIDDEN} hidden layers of {WIDTH} units on 8x8 digits, SGD lr 0.01, momentum 0.9")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
