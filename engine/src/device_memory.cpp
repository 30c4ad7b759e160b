#include "device_memory.h"

#include <exception>

#include <torch/torch.h>

// UMRFLOW_CUDA_ALLOCATOR_STATS: set by CMakeLists.txt for this file when the
// libtorch found has c10_cuda (the GPU machine's build).
#if UMRFLOW_CUDA_ALLOCATOR_STATS
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace umrflow {

std::optional<std::int64_t> device_peak_bytes(torch::Device device) {
#if UMRFLOW_CUDA_ALLOCATOR_STATS
  if (device.is_cuda()) {
    try {
      const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
      return stats.allocated_bytes[0].peak;  // entry 0: every pool together
    } catch (const std::exception&) {  // an allocator not set up: no figure rather than a failed run
      return std::nullopt;
    }
  }
#endif
  (void)device;
  return std::nullopt;
}

void reset_device_peak(torch::Device device) {
#if UMRFLOW_CUDA_ALLOCATOR_STATS
  if (device.is_cuda()) {
    try {
      (void)torch::empty({1}, torch::TensorOptions(device));  // sets the allocator up in a process that has no CUDA tensor yet
      c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
    } catch (const std::exception&) {
    }
  }
#endif
  (void)device;
}

}  // namespace umrflow
