// device_memory.h (engine-internal): peak device memory per epoch, the
// figure users compare with the PyTorch peer's max_memory_allocated.
#pragma once

#include <cstdint>
#include <optional>

#include <torch/types.h>

namespace umrflow {

/// The most bytes tensors held on `device` at once since the last
/// reset_device_peak (the CUDA caching allocator's allocated-bytes peak, what
/// torch.cuda.max_memory_allocated reports), or nothing where this build or
/// device cannot tell: the CPU, or a libtorch built without CUDA.
std::optional<std::int64_t> device_peak_bytes(torch::Device device);

/// Starts a new peak at what is held now (nothing to do where there is none).
void reset_device_peak(torch::Device device);

}  // namespace umrflow
