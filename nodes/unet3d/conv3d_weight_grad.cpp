#include "conv3d_weight_grad.h"
#include "float_vectors.h"

#include <algorithm>

namespace umrflow::model {

std::int64_t padded_row(std::int64_t w) { return (w + 15) / 16 * 16 + 2; }

namespace {

/// Rows [y0, y1) of plane z of sample n, tap row (kd, kh): adds
/// dY[o][z][y][x] * Xp[z + kd][y + kh][x + kw] over those rows into sums.
template <int Out, int Width>
[[gnu::always_inline]] inline void tap_rows(const float* xp, const float* const* dy, std::int64_t xp_row, std::int64_t dy_row,
                                            std::int64_t rows, std::int64_t chunks, typename Vec<Width>::type (*sums)[27], int k0) {
  using V = typename Vec<Width>::type;
  V acc[Out][3];
#pragma GCC unroll 8
  for (int o = 0; o < Out; ++o) acc[o][0] = acc[o][1] = acc[o][2] = V{};
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* x = xp + r * xp_row;
    for (std::int64_t c = 0; c < chunks; ++c) {
      const V x0 = load<V>(x + c * Width), x1 = load<V>(x + c * Width + 1), x2 = load<V>(x + c * Width + 2);
#pragma GCC unroll 8
      for (int o = 0; o < Out; ++o) {
        V g = load<V>(dy[o] + r * dy_row + c * Width);
#if defined(__x86_64__) && defined(__GNUC__)
        // Keeps g in a register: GCC would fold the load into each of the three
        // multiply-adds, and three 64-byte loads per output channel halve the
        // kernel's speed on Zen 5 (36 against 70 GMAC/s, 8 to 8 at 32^3).
        asm("" : "+v"(g));
#endif
        acc[o][0] += g * x0;
        acc[o][1] += g * x1;
        acc[o][2] += g * x2;
      }
    }
  }
#pragma GCC unroll 8
  for (int o = 0; o < Out; ++o)
    for (int kw = 0; kw < 3; ++kw) sums[o][k0 + kw] += acc[o][kw];
}

template <int Out, int Width>
[[gnu::always_inline]] inline void task(const Conv3x3x3Shape& s, const float* padded_input, const float* grad_output,
                                        float* grad_weight, std::int64_t i, std::int64_t o0) {
  using V = typename Vec<Width>::type;
  V sums[Out][27] = {};  // partial sums, one vector per (output channel, tap)
  const std::int64_t xp_row = padded_row(s.w), dy_row = xp_row - 2, chunks = dy_row / Width;
  const std::int64_t xp_plane = (s.h + 2) * xp_row, dy_plane = s.h * dy_row;
  // Rows per tile: the tile's output gradient (Out channels) stays within 256 KiB.
  const std::int64_t tile_rows = std::max<std::int64_t>(1, 65536 / (Out * std::max<std::int64_t>(1, dy_row)));  // dy_row is 0 when W is 0
  for (std::int64_t n = 0; n < s.n; ++n) {
    const float* xp_channel = padded_input + (n * s.in + i) * (s.d + 2) * xp_plane;
    for (std::int64_t z = 0; z < s.d; ++z) {
      for (std::int64_t y0 = 0; y0 < s.h; y0 += tile_rows) {
        const std::int64_t rows = std::min(tile_rows, s.h - y0);
        const float* dy[Out];
        for (int o = 0; o < Out; ++o) dy[o] = grad_output + ((n * s.out + o0 + o) * s.d + z) * dy_plane + y0 * dy_row;
        for (int kd = 0; kd < 3; ++kd)
          for (int kh = 0; kh < 3; ++kh)
            tap_rows<Out, Width>(xp_channel + (z + kd) * xp_plane + (y0 + kh) * xp_row, dy, xp_row, dy_row, rows, chunks,
                                 sums, kd * 9 + kh * 3);
      }
    }
  }
  for (int o = 0; o < Out; ++o)
    for (int k = 0; k < 27; ++k) {
      float total = 0.0f;
      for (int l = 0; l < Width; ++l) total += sums[o][k][l];
      grad_weight[((o0 + o) * s.in + i) * 27 + k] = total;
    }
}

/// Output channels [o0, o0 + count) in blocks of up to 8 with AVX-512's 32
/// vector registers, of up to 4 with AVX2's or SSE's 16 (24 accumulators would
/// not fit); each output channel's sums are the same either way.
template <int Width>
[[gnu::always_inline]] inline void task_any(const Conv3x3x3Shape& s, const float* xp, const float* dy, float* dw, std::int64_t i,
                                            std::int64_t o0, std::int64_t count) {
  constexpr std::int64_t block = Width >= 16 ? 8 : 4;
  for (std::int64_t o = o0; o < o0 + count; o += block) {
    switch (std::min(block, o0 + count - o)) {
      case 1: task<1, Width>(s, xp, dy, dw, i, o); break;
      case 2: task<2, Width>(s, xp, dy, dw, i, o); break;
      case 3: task<3, Width>(s, xp, dy, dw, i, o); break;
      case 4: task<4, Width>(s, xp, dy, dw, i, o); break;
      case 5: task<5, Width>(s, xp, dy, dw, i, o); break;
      case 6: task<6, Width>(s, xp, dy, dw, i, o); break;
      case 7: task<7, Width>(s, xp, dy, dw, i, o); break;
      default: task<8, Width>(s, xp, dy, dw, i, o); break;
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) void task_avx512(const Conv3x3x3Shape& s, const float* xp, const float* dy, float* dw,
                                                    std::int64_t i, std::int64_t o0, std::int64_t count) {
  task_any<16>(s, xp, dy, dw, i, o0, count);
}
__attribute__((target("avx2,fma"))) void task_avx2(const Conv3x3x3Shape& s, const float* xp, const float* dy, float* dw,
                                                   std::int64_t i, std::int64_t o0, std::int64_t count) {
  task_any<8>(s, xp, dy, dw, i, o0, count);
}
#endif

}  // namespace

int conv3x3x3_vector_width() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const int width = __builtin_cpu_supports("avx512f")                                   ? 16
                           : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 8
                                                                                              : 4;
  return width;
#else
  return 4;
#endif
}

void conv3x3x3_weight_grad_task(const Conv3x3x3Shape& s, const float* padded_input, const float* grad_output, float* grad_weight,
                                std::int64_t i, std::int64_t o0, std::int64_t count, int width) {
  width = std::min(width, conv3x3x3_vector_width());
#if defined(__x86_64__) && defined(__GNUC__)
  if (width >= 16) return task_avx512(s, padded_input, grad_output, grad_weight, i, o0, count);
  if (width >= 8) return task_avx2(s, padded_input, grad_output, grad_weight, i, o0, count);
#endif
  task_any<4>(s, padded_input, grad_output, grad_weight, i, o0, count);
}

}  // namespace umrflow::model
