"""@njit CPU kernels. cuda/ holds their @cuda.jit twins under the same names."""
