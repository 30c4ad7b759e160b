#pragma once
// GCC vector-extension floats shared by the 3x3x3 convolution kernels
// (conv3d_weight_grad.cpp, conv3d_forward.cpp): Vec<Width>::type is Width
// floats, and load()/store() move one from or to memory of any alignment.
// Only included by those sources, each of which compiles its vector code for
// one target per function (target attributes, runtime dispatch).
#include <cstring>

// The vector helpers are always inlined into functions of one target, so GCC's
// note that a vector argument's ABI depends on the target does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace umrflow::model {

template <int Width>
struct Vec {
  typedef float type __attribute__((vector_size(Width * sizeof(float))));
};

template <typename V>
[[gnu::always_inline]] inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename V>
[[gnu::always_inline]] inline void store(float* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

}  // namespace umrflow::model
