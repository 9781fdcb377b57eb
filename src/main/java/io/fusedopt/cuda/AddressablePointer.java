package io.fusedopt.cuda;

import jcuda.driver.CUdeviceptr;

/**
 * A JCuda device pointer whose address can be read after the driver filled it in (cuMemAlloc,
 * cuMemGetAddressRange): JCuda keeps the address in protected fields, visible to a subclass.
 */
final class AddressablePointer extends CUdeviceptr {
    long address() {
        return getNativePointer() + getByteOffset();
    }
}
