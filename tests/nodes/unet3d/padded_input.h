#pragma once
// Test helper: an input in the layout both 3x3x3 kernels read (conv3d_forward.h,
// conv3d_weight_grad.h).
#include "unet3d/conv3d_weight_grad.h"

#include <algorithm>
#include <vector>

namespace umrflow::test {

/// x, plain (N, in, D, H, W), as (N, in, D+2, H+2, padded_row(W)) with zero
/// borders.
inline std::vector<float> padded_input(const model::Conv3x3x3Shape& s, const std::vector<float>& x) {
  const std::int64_t row = model::padded_row(s.w);
  std::vector<float> xp(s.n * s.in * (s.d + 2) * (s.h + 2) * row, 0.0f);
  for (std::int64_t c = 0; c < s.n * s.in; ++c)
    for (std::int64_t z = 0; z < s.d; ++z)
      for (std::int64_t y = 0; y < s.h; ++y)
        std::copy_n(&x[((c * s.d + z) * s.h + y) * s.w], s.w, &xp[((c * (s.d + 2) + z + 1) * (s.h + 2) + y + 1) * row + 1]);
  return xp;
}

}  // namespace umrflow::test
