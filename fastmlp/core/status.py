"""Status codes returned by every backend's train_steps, and what each means to a user.

One home above both twins: cpu/steps.py, the generated kernels (cpu/codegen.py) and the CUDA
kernels (cuda/optim.py) all return or record these codes; training.py turns them into errors.
"""

OK = 0
NONFINITE_LOSS = 1
NONFINITE_GRADIENT = 2

#: What went non-finite, for the FloatingPointError that training.fit raises.
DESCRIPTIONS = {NONFINITE_LOSS: "the training loss", NONFINITE_GRADIENT: "a gradient"}


def describe(code):
    """The words for a failure code; a clear error for a code no kernel should return."""
    try:
        return DESCRIPTIONS[code]
    except KeyError:
        raise RuntimeError(f"a training kernel returned unknown status code {code!r}; known "
                           f"codes are {sorted(DESCRIPTIONS)} and OK={OK}") from None
