"""@cuda.jit twins of fastmlp/cpu/, over device-resident flat buffers (NVIDIA's numba-cuda).

Nothing is imported here: `import fastmlp` must work without numba-cuda and without a GPU.
`fastmlp.cuda.device.require_cuda()` checks that the device can be used, with errors that say
what to install or set; the model imports the rest only after that check.

dense.py, loss.py and optim.py have host functions with the names, arguments and results of
the kernels in cpu/dense.py, cpu/loss.py and cpu/optim.py (activation_forward, dense_forward,
loss_forward, sgd_step, optimizer_step, gradient_norms, ...), on device arrays. As on the
CPU, the training step's grads buffer holds the data gradient; the l2 term is added in the
norms and the update.

    device.py      availability checks; every device allocation and copy
    elementwise.py activations, block reduction, fill, gather and l2_backward kernels
    gemm.py        tiled shared-memory GEMM: dense_forward / dense_backward kernels
    dense.py       the dense layer's launchers and the twins of cpu/dense.py
    loss.py        row losses and output delta, one thread per row (twins of cpu/loss.py)
    optim.py       the step's verdict and the optimizer update, one elementwise kernel;
                   the twins of cpu/optim.py
    fused.py       the one-launch training step for narrow networks, and the choice of
                   many steps per launch
    fused_steps.py many training steps per launch when a network and a batch fit one block
    workspace.py   DeviceWorkspace: the flat buffers on the device
    network.py     launch plans for a forward pass, a backward pass, a training step
    train.py       host drivers: forward_rows, loss_rows, gradient_rows; run.py: CudaRun (one fit)
    bench.py       time_train_steps, for `fastmlp bench --device cuda`
"""
