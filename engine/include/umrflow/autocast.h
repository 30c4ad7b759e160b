// autocast.h: libtorch's autocast switches under one set of names for
// libtorch 1.13 (per-device functions: set_enabled, set_cpu_enabled, ...) and
// 2.x, which since 2.4 deprecates those, with a warning at every call, for
// functions that take the device type.
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace umrflow::autocast {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
inline bool enabled(at::DeviceType device) { return at::autocast::is_autocast_enabled(device); }
inline void set_enabled(at::DeviceType device, bool on) { at::autocast::set_autocast_enabled(device, on); }
inline void set_dtype(at::DeviceType device, at::ScalarType dtype) { at::autocast::set_autocast_dtype(device, dtype); }
#else
/// Whether autocast is on for `device` (the CPU or CUDA) on this thread.
inline bool enabled(at::DeviceType device) {
  return device == at::kCPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
}
/// Turns autocast on or off for `device` (the CPU or CUDA) on this thread.
inline void set_enabled(at::DeviceType device, bool on) {
  if (device == at::kCPU) at::autocast::set_cpu_enabled(on);
  else at::autocast::set_enabled(on);
}
/// The lower precision autocast uses on `device` (the CPU or CUDA).
inline void set_dtype(at::DeviceType device, at::ScalarType dtype) {
  if (device == at::kCPU) at::autocast::set_autocast_cpu_dtype(dtype);
  else at::autocast::set_autocast_gpu_dtype(dtype);
}
#endif

}  // namespace umrflow::autocast
