#include <gtest/gtest.h>

#include <torch/torch.h>

#include "device_memory.h"

namespace umrflow {

// The CPU has no peak to report: the metric is left out rather than written as zero.
TEST(DeviceMemory, CpuReportsNoPeak) {
  reset_device_peak(torch::kCPU);
  const torch::Tensor held = torch::ones({1 << 20});
  EXPECT_FALSE(device_peak_bytes(torch::kCPU).has_value());
  EXPECT_EQ(held.sum().item<double>(), double(1 << 20));
}

// On CUDA the peak covers a 64 MiB tensor freed before the read, and a reset brings it back below that
// (tools/gpu_check.sh runs this; skipped without a GPU; a CUDA build without the allocator's statistics fails it).
TEST(DeviceMemory, CudaPeakCoversAFreedTensorUntilReset) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const torch::Device cuda("cuda:0");
  constexpr std::int64_t kBytes = std::int64_t{64} << 20;
  reset_device_peak(cuda);
  const auto before = device_peak_bytes(cuda);
  ASSERT_TRUE(before.has_value()) << "this CUDA build reports no allocator statistics";
  {
    torch::Tensor t = torch::empty({kBytes / 4}, torch::TensorOptions(cuda).dtype(torch::kFloat32));
    t.fill_(1);
  }
  EXPECT_GE(*device_peak_bytes(cuda), *before + kBytes);
  reset_device_peak(cuda);
  EXPECT_LT(*device_peak_bytes(cuda), *before + kBytes);
}

}  // namespace umrflow
