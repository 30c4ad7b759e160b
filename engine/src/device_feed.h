// device_feed.h (engine-internal): a batch's copy to the device, started on a
// data-plane thread ahead of the step (DataPlane::stage), so that the copy of
// batch i + 1 overlaps the step's work on batch i.
//
// stage() moves every host tensor of the batch to page-locked memory and
// issues its copy to the device on a side stream of that device, then records
// an event there. take(), in the step before the batch is used, makes the
// step's current stream wait for that event (the device waits, the host does
// not) and marks each copied tensor as used by the step's stream, so the
// device's caching allocator does not give its memory to a later copy while
// the step may still read it. Batches are taken in the order they were staged,
// each by its batch index (a mismatch is a logic error, not a silent wrong
// batch); clear() forgets batches staged but never taken (an epoch that stopped).
//
// Only a CUDA device has a feed (active()); on the CPU stage() and take()
// leave the batch as it is and the step moves it, as before.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

#include <c10/core/Event.h>
#include <c10/core/Stream.h>
#include <torch/types.h>

#include "umrflow/packet.h"

namespace umrflow {

class DeviceFeed {
 public:
  explicit DeviceFeed(torch::Device device);
  bool active() const { return side_.has_value(); }
  /// On a data-plane thread: pinned copy, asynchronous transfer, an event.
  void stage(Packet& batch, std::int64_t index);
  /// In the step: wait on the device for the batch's copy; throws
  /// std::logic_error unless batch `index` is the oldest one staged.
  void take(Packet& batch, std::int64_t index);
  void clear();

 private:
  torch::Device device_;
  std::optional<c10::Stream> side_;
  std::mutex mutex_;
  std::deque<std::pair<std::int64_t, c10::Event>> copied_;  // (batch index, copy done) per batch not yet taken, in order
};

}  // namespace umrflow
