#include "conv3d_forward.h"
#include "float_vectors.h"

#include <algorithm>

namespace umrflow::model {

namespace {

/// Output plane z of sample n, output channels [o0, o0 + Out), from the block's
/// packed weights `wp` (in, 27, block). The plane's (row, chunk of Width)
/// items go in pairs: 2 x Out vectors of sums.
template <int Out, int Width>
[[gnu::always_inline]] inline void plane(const Conv3x3x3Shape& s, const float* xp, const float* wp, std::int64_t block,
                                         const float* bias, float* output, std::int64_t n, std::int64_t o0, std::int64_t z) {
  using V = typename Vec<Width>::type;
  const std::int64_t xp_row = padded_row(s.w), xp_plane = (s.h + 2) * xp_row, chunks = (s.w + Width - 1) / Width;
  const std::int64_t items = s.h * chunks;
  const float* sample = xp + n * s.in * (s.d + 2) * xp_plane;
  for (std::int64_t item = 0; item < items; item += 2) {
    const std::int64_t second = std::min(item + 1, items - 1);  // an odd last item is summed twice, stored once
    const std::int64_t at[2] = {item / chunks * xp_row + item % chunks * Width, second / chunks * xp_row + second % chunks * Width};
    V acc[Out][2];
#pragma GCC unroll 8
    for (int o = 0; o < Out; ++o) acc[o][0] = acc[o][1] = V{} + (bias ? bias[o0 + o] : 0.0f);
    for (std::int64_t i = 0; i < s.in; ++i) {
      const float* x = sample + (i * (s.d + 2) + z) * xp_plane;
      const float* w = wp + i * 27 * block;
      for (int kd = 0; kd < 3; ++kd)
        for (int kh = 0; kh < 3; ++kh) {
          const float* r = x + kd * xp_plane + kh * xp_row;
#pragma GCC unroll 3
          for (int kw = 0; kw < 3; ++kw) {
            const V a = load<V>(r + at[0] + kw), b = load<V>(r + at[1] + kw);
            const float* wk = w + (kd * 9 + kh * 3 + kw) * block;
#pragma GCC unroll 8
            for (int o = 0; o < Out; ++o) {
              acc[o][0] += a * wk[o];
              acc[o][1] += b * wk[o];
            }
          }
        }
    }
    for (int k = 0; k < (second == item ? 1 : 2); ++k) {
      const std::int64_t y = (item + k) / chunks, x0 = (item + k) % chunks * Width, valid = std::min<std::int64_t>(Width, s.w - x0);
#pragma GCC unroll 8
      for (int o = 0; o < Out; ++o) {
        float* out = output + (((n * s.out + o0 + o) * s.d + z) * s.h + y) * s.w + x0;
        if (valid == Width) {
          store(out, acc[o][k]);
        } else {
          float row[Width];
          store(row, acc[o][k]);
          std::copy_n(row, valid, out);
        }
      }
    }
  }
}

template <int Width>
[[gnu::always_inline]] inline void task_any(const Conv3x3x3Shape& s, const float* xp, const float* wp, const float* bias, float* y,
                                            std::int64_t n, std::int64_t o0, std::int64_t count, std::int64_t z) {
  constexpr std::int64_t block = Width >= 16 ? 8 : 4;
  const float* w = wp + o0 / block * s.in * 27 * block;
  switch (count) {
    case 1: return plane<1, Width>(s, xp, w, block, bias, y, n, o0, z);
    case 2: return plane<2, Width>(s, xp, w, block, bias, y, n, o0, z);
    case 3: return plane<3, Width>(s, xp, w, block, bias, y, n, o0, z);
    case 4: return plane<4, Width>(s, xp, w, block, bias, y, n, o0, z);
  }
  if constexpr (block == 8) {
    switch (count) {
      case 5: return plane<5, Width>(s, xp, w, block, bias, y, n, o0, z);
      case 6: return plane<6, Width>(s, xp, w, block, bias, y, n, o0, z);
      case 7: return plane<7, Width>(s, xp, w, block, bias, y, n, o0, z);
      default: return plane<8, Width>(s, xp, w, block, bias, y, n, o0, z);
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) void task_avx512(const Conv3x3x3Shape& s, const float* xp, const float* wp, const float* bias,
                                                    float* y, std::int64_t n, std::int64_t o0, std::int64_t count, std::int64_t z) {
  task_any<16>(s, xp, wp, bias, y, n, o0, count, z);
}
__attribute__((target("avx2,fma"))) void task_avx2(const Conv3x3x3Shape& s, const float* xp, const float* wp, const float* bias,
                                                   float* y, std::int64_t n, std::int64_t o0, std::int64_t count, std::int64_t z) {
  task_any<8>(s, xp, wp, bias, y, n, o0, count, z);
}
#endif

}  // namespace

int conv3x3x3_forward_block(int width) { return std::min(width, conv3x3x3_vector_width()) >= 16 ? 8 : 4; }

std::vector<float> conv3x3x3_pack_weight(const Conv3x3x3Shape& s, const float* weight, int width) {
  const std::int64_t block = conv3x3x3_forward_block(width), blocks = (s.out + block - 1) / block;
  std::vector<float> packed(blocks * s.in * 27 * block, 0.0f);
  for (std::int64_t o = 0; o < s.out; ++o)
    for (std::int64_t i = 0; i < s.in; ++i)
      for (int k = 0; k < 27; ++k) packed[((o / block * s.in + i) * 27 + k) * block + o % block] = weight[(o * s.in + i) * 27 + k];
  return packed;
}

void conv3x3x3_forward_task(const Conv3x3x3Shape& s, const float* padded_input, const float* packed_weight, const float* bias,
                            float* output, std::int64_t n, std::int64_t o0, std::int64_t count, std::int64_t z, int width) {
  width = std::min(width, conv3x3x3_vector_width());
#if defined(__x86_64__) && defined(__GNUC__)
  if (width >= 16) return task_avx512(s, padded_input, packed_weight, bias, output, n, o0, count, z);
  if (width >= 8) return task_avx2(s, padded_input, packed_weight, bias, output, n, o0, count, z);
#endif
  task_any<4>(s, padded_input, packed_weight, bias, output, n, o0, count, z);
}

}  // namespace umrflow::model
