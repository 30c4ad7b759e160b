#include "umrflow/own_kernels.h"

#include <atomic>

namespace umrflow {

namespace {
std::atomic<bool> own{true};
}  // namespace

bool own_kernels() { return own.load(std::memory_order_relaxed); }
void set_own_kernels(bool on) { own.store(on, std::memory_order_relaxed); }

OwnKernelsScope::OwnKernelsScope(bool on) : previous_(own_kernels()) { set_own_kernels(on); }
OwnKernelsScope::~OwnKernelsScope() { set_own_kernels(previous_); }

}  // namespace umrflow
