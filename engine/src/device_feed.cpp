#include "device_feed.h"

#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <stdexcept>
#include <string>

namespace umrflow {

DeviceFeed::DeviceFeed(torch::Device device) : device_(device) {
  if (!device.is_cuda()) return;
  if (!device.has_index()) device_ = torch::Device(device.type(), 0);
  side_ = c10::impl::VirtualGuardImpl(device_.type()).getStreamFromGlobalPool(device_, /*isHighPriority=*/false);
}

void DeviceFeed::stage(Packet& batch, std::int64_t index) {
  if (!side_) return;
  const c10::StreamGuard on_side(*side_);  // this thread's current device and stream, until the end of the scope
  for (auto& [key, t] : batch.tensors)
    if (t.defined() && t.device().is_cpu()) t = t.pin_memory().to(device_, /*non_blocking=*/true);
  c10::Event copied(device_.type());
  copied.record(*side_);
  std::lock_guard<std::mutex> lock(mutex_);
  copied_.emplace_back(index, std::move(copied));
}

void DeviceFeed::take(Packet& batch, std::int64_t index) {
  if (!side_) return;
  std::optional<c10::Event> copied;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (copied_.empty() || copied_.front().first != index)
      throw std::logic_error("DeviceFeed::take: batch " + std::to_string(index) + " was not the next one staged (" +
                             (copied_.empty() ? std::string("none is waiting") : "batch " + std::to_string(copied_.front().first) + " is") + ")");
    copied.emplace(std::move(copied_.front().second));
    copied_.pop_front();
  }
  const c10::Stream step = c10::impl::VirtualGuardImpl(device_.type()).getStream(device_);
  copied->block(step);
  for (auto& [key, t] : batch.tensors)
    if (t.defined() && t.device() == device_) t.record_stream(step);
}

void DeviceFeed::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  copied_.clear();
}

}  // namespace umrflow
