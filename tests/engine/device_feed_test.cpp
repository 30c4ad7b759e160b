#include <gtest/gtest.h>

#include <torch/torch.h>

#include "device_feed.h"

namespace umrflow {

namespace {

Packet host_batch() {
  torch::manual_seed(3);
  Packet p;
  p.tensors["image"] = torch::randn({2, 4, 8, 8, 8});
  p.tensors["label"] = torch::randint(0, 4, {2, 8, 8, 8}, torch::kInt64);
  p.samples = {{0, "a", {}}, {1, "b", {}}};
  return p;
}

}  // namespace

// On the CPU there is no feed: staging and taking leave the batch's tensors
// where and what they are (the step moves them itself).
TEST(DeviceFeed, CpuHasNoFeedAndLeavesTheBatch) {
  DeviceFeed feed(torch::Device(torch::kCPU));
  EXPECT_FALSE(feed.active());
  Packet p = host_batch();
  const void* before = p.at("image").data_ptr();
  feed.stage(p, 0);
  feed.take(p, 0);
  EXPECT_EQ(p.at("image").data_ptr(), before);
  EXPECT_TRUE(p.at("image").device().is_cpu());
}

// On CUDA (the GPU machine's run of tools/gpu_check.sh): two batches staged
// ahead arrive on the device with their values and types, read on the step's
// stream with no host synchronisation in between (64 MiB each, so that a read
// that did not wait for its copy would see unwritten memory); a take out of
// order is refused.
TEST(DeviceFeed, CudaBatchesArriveInOrderWithTheirValues) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  DeviceFeed feed(torch::Device(torch::kCUDA, 0));
  ASSERT_TRUE(feed.active());
  Packet a = host_batch(), b = host_batch();
  a.tensors["big"] = torch::full({16, 1024, 1024}, 1.5f);
  b.tensors["big"] = torch::full({16, 1024, 1024}, 2.5f);
  b.at("image") += 1;
  const Packet a_host = a, b_host = b;
  feed.stage(a, 0);
  feed.stage(b, 1);
  EXPECT_THROW(feed.take(b, 1), std::logic_error);  // batch 0 is next
  feed.take(a, 0);
  feed.take(b, 1);
  for (const auto* batch : {&a, &b})
    for (const auto& [key, t] : batch->tensors) EXPECT_TRUE(t.is_cuda()) << key;
  EXPECT_EQ(a.at("big").min().item<float>(), 1.5f);  // min and max on the step's stream
  EXPECT_EQ(b.at("big").max().item<float>(), 2.5f);
  EXPECT_EQ(b.at("big").min().item<float>(), 2.5f);
  for (const auto& key : {"image", "label"}) {
    EXPECT_EQ(a.at(key).scalar_type(), a_host.at(key).scalar_type());
    EXPECT_TRUE(torch::equal(a.at(key).cpu(), a_host.at(key))) << key;
    EXPECT_TRUE(torch::equal(b.at(key).cpu(), b_host.at(key))) << key;
  }
  EXPECT_THROW(feed.take(a, 2), std::logic_error);  // none is waiting
}

}  // namespace umrflow
