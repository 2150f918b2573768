"""view2d: a C-contiguous (rows, cols) view into a flat 1-D buffer, with no call into C.

`buf[off:off + rows*cols].reshape((rows, cols))` costs ~30 ns in numba (reshape calls a C
helper that checks the strides), and a training step of a small network makes a few dozen
such views: for the xor workload that was a third of the step. view2d builds the same array
struct inline: data pointer, shape, C strides, and the buffer's own meminfo (the view keeps
the buffer alive, as any numba slice does). The caller guarantees off + rows*cols <= len(buf).
"""
from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


@intrinsic
def view2d(typingctx, buf, offset, rows, cols):
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"):
        return None
    view_type = types.Array(buf.dtype, 2, "C")
    sig = view_type(buf, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        buf_value, offset, rows, cols = args
        src = make_array(signature.args[0])(context, builder, buf_value)
        out = make_array(view_type)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(
            context.get_data_type(view_type.dtype)))
        populate_array(out,
                       data=cgutils.pointer_add(builder, src.data,
                                                builder.mul(offset, itemsize)),
                       shape=cgutils.pack_array(builder, [rows, cols]),
                       strides=cgutils.pack_array(builder, [builder.mul(cols, itemsize),
                                                            itemsize]),
                       itemsize=itemsize, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, view_type, out._getvalue())

    return sig, codegen


@intrinsic
def readonly(typingctx, arr):
    """arr typed read-only: the same array, for callees that also take the (read-only)
    validated inputs, so that they compile once rather than once per write flag."""
    if not isinstance(arr, types.Array):
        return None
    view_type = arr.copy(readonly=True)

    def codegen(context, builder, signature, args):
        return impl_ret_borrowed(context, builder, view_type, args[0])

    return view_type(arr), codegen
