"""Compile every CUDA kernel of fastmlp to PTX for an H100 (sm_90), in float32 and float64,
with the default launch shapes and with the tests' tiny ones. Needs numba-cuda with NVVM
(the `cuda` extra installs it) but no GPU, and must run WITHOUT the simulator, which compiles
nothing: test_ptx.py runs it in a subprocess. Prints one line per kernel compiled."""
import re
import sys

from numba import cuda, types

from fastmlp import config


def array(dtype, ndim):
    return types.Array(dtype, ndim, "C")


def signatures(dtype):
    """(name, kernel, argument types) of every kernel, as the package launches them."""
    from fastmlp.cuda import elementwise, fused, gemm, loss, optim, dense
    f64, i64, i32, b = types.float64, types.int64, types.int32, types.boolean
    vec, mat, mat3 = array(dtype, 1), array(dtype, 2), array(f64, 3)
    forward, backward = gemm.kernels(gemm.tile_config())
    optimizer_step, update, sum_squares, gradient_norms = optim.kernels(config.CUDA_THREADS)
    fused_step = fused.kernel(*fused.shape(8 if dtype == f64 else 4))
    ivec, fvec, fmat = array(i64, 1), array(f64, 1), array(f64, 2)
    yield "fill_kernel", elementwise.fill_kernel, (vec, f64)
    yield "gather_rows", elementwise.gather_rows, (mat, mat, mat, mat, ivec, i64)
    yield "l2_backward", elementwise.l2_backward_kernel, (vec, vec, i64, f64)
    yield "activation_forward", dense.activation_forward_kernel, (mat, mat, vec, i64)
    yield "activation_backward", dense.activation_backward_kernel, (mat, mat, i64)
    yield "dense_forward", forward, (mat, mat, mat, vec, i64)
    yield "dense_backward", backward, (mat, mat, vec, fmat, mat, mat, mat, i64, b, f64)
    yield "loss_forward", loss.loss_forward_kernel, (fvec, mat, mat, mat, i64)
    yield "loss_backward", loss.loss_backward_kernel, (mat, mat, mat, f64, i64, i64)
    yield "loss_forward_backward", loss.loss_forward_backward, \
        (mat, fvec, mat, mat, mat, f64, i64, i64)
    yield "weighted_loss_forward_backward", loss.weighted_loss_forward_backward, \
        (mat, fvec, mat, mat, mat, fvec, ivec, i64, i64, i64, f64)
    yield "optimizer_step", optimizer_step, \
        (vec, vec, vec, vec, ivec, fmat, fvec, mat3, ivec, fvec, i64, i64, i64, f64, i64,
         f64, f64, f64, f64)
    yield "update", update, (vec, vec, vec, vec, fvec, i64, i64, f64, f64, f64)
    yield "sum_squares", sum_squares, (fvec, vec)
    yield "gradient_norms", gradient_norms, (fvec, ivec, vec, vec, array(i64, 2), f64)
    yield "fused_step", fused_step, \
        (vec, vec, vec, vec, ivec, fmat, fvec, mat3, mat, array(i32, 1), vec, mat, mat, mat,
         mat, mat, mat, mat, ivec, i64, array(i64, 2), i64, ivec, fvec, i64, i64, i64, f64,
         i64, i64, f64, f64)


NO_COMPILER = 3

#: Kernels whose float32 squares must be taken in float64 (a finite float32 gradient above
#: 1.8e19 squares to inf in float32). numba-cuda types float() of a float32 as float32,
#: which the simulator does not show: only the PTX does. (sum_squares squares weights in
#: their own dtype, as cpu l2_forward does.)
SQUARES_IN_FLOAT64 = {"gradient_norms"}
FLOAT32_SQUARE = re.compile(r"\b(?:mul|fma)(?:\.rn)?\.f32\s+%f\d+, (%f\d+), \1\b")


class H100:
    compute_capability = (9, 0)


def main():
    # Device functions are compiled for "the current device", which needs a driver; stand
    # an H100 in for it (compile_ptx itself takes cc= and needs none).
    from numba.cuda import dispatcher
    dispatcher.get_current_device = H100
    try:
        cuda.compile_ptx(lambda: None, (), cc=(9, 0))
    except Exception as exc:  # no NVVM or NVRTC: say so with a distinct exit status
        print(f"cannot compile CUDA here: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(NO_COMPILER)
    shapes = [{}]
    if len(sys.argv) > 1 and sys.argv[1] == "--with-tiny":
        from tests.cuda.conftest import TINY
        shapes.append(TINY)
    for overrides in shapes:
        for name, value in overrides.items():
            setattr(config, name, value)
        for dtype in (types.float32, types.float64):
            for name, kernel, sig in signatures(dtype):
                ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
                assert ".entry" in ptx
                if dtype == types.float32 and name in SQUARES_IN_FLOAT64:
                    square = FLOAT32_SQUARE.search(ptx)
                    assert square is None, f"{name} squares in float32: {square.group(0)}"
                print(f"compiled {name} {dtype} {'tiny' if overrides else 'default'}",
                      flush=True)


if __name__ == "__main__":
    main()
