"""@cuda.jit twins of fastmlp/cpu/, over device-resident flat buffers (NVIDIA's numba-cuda).

Nothing is imported here: `import fastmlp` must work without numba-cuda and without a GPU.
`fastmlp.cuda.device.require_cuda()` checks that the device can be used, with errors that say
what to install or set; the model imports the rest only after that check.

    device.py      availability checks; every device allocation and copy
    elementwise.py activations, block reduction, fill and gather kernels
    gemm.py        tiled shared-memory GEMM: dense_forward / dense_backward kernels
    dense.py       the dense layer's launchers (the twins of cpu/dense.py)
    loss.py        output activation, row losses and output delta, one thread per row
    optim.py       the step's verdict and the optimizer update, one elementwise kernel
    fused.py       the one-launch training step for narrow networks
    workspace.py   DeviceWorkspace: the flat buffers on the device
    network.py     launch plans for a forward pass, a backward pass, a training step
    train.py       host drivers: Trainer (fit), forward_rows, loss_rows, gradient_rows
    bench.py       time_train_steps, for `fastmlp bench --device cuda`
"""
