// The collectives of a build whose libtorch came without Gloo's headers (a
// PyTorch pip wheel may ship ProcessGroupGloo.hpp without the gloo/ headers it
// includes): everything but multi-process runs works; starting one says why
// it cannot. CMakeLists.txt picks this file or collective.cpp.
#include <stdexcept>

#include "collective.h"

namespace umrflow {

namespace {
[[noreturn]] void unavailable() {
  throw std::runtime_error(
      "this umrflow was built without Gloo's headers (gloo/algorithm.h was not found beside libtorch's), so runs over "
      "several processes (torchrun) are unavailable; rebuild against a libtorch with them (Debian's "
      "libtorch-dev brings libgloo-dev) or put the folder above gloo/ on CMAKE_PREFIX_PATH's include paths and reconfigure");
}
}  // namespace

struct Collective::Impl {};
Collective::Collective(const LaunchEnv&, std::chrono::milliseconds) { unavailable(); }
Collective::~Collective() = default;
void Collective::broadcast(const std::vector<torch::Tensor>&, int) { unavailable(); }
void Collective::sum(const std::vector<torch::Tensor>&) { unavailable(); }
std::vector<std::string> Collective::gather(const std::string&) { unavailable(); }
bool Collective::any(bool) { unavailable(); }
int Collective::count(bool) { unavailable(); }
std::vector<bool> Collective::which(bool) { unavailable(); }
std::string Collective::silent_ranks() const { unavailable(); }
void Collective::fail(const char*, const std::exception&) const { unavailable(); }

struct GradientReducer::Impl {};
GradientReducer::GradientReducer(Collective&, std::vector<torch::Tensor>, std::size_t) { unavailable(); }
GradientReducer::~GradientReducer() = default;
void GradientReducer::arm() { unavailable(); }
void GradientReducer::finish() { unavailable(); }
std::size_t GradientReducer::buckets() const { unavailable(); }
std::size_t GradientReducer::launched_early() const { unavailable(); }

}  // namespace umrflow
