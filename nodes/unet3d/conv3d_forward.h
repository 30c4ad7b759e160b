#pragma once
// The forward pass of a 3x3x3 convolution (stride 1, padding 1, dilation 1,
// no groups) with few output channels, on the CPU, without libtorch.
//
// oneDNN 2.6 (libtorch 1.13) vectorises its direct 3D convolution over blocks
// of 16 output channels: with 8 outputs half of every vector is padding, and
// the blocked result is reordered back to libtorch's layout afterwards. At a
// 32^3 batch of two on one core, 16 to 8 channels take it 10.2 ms and 8 to 8
// 3.0 ms. This kernel vectorises along the x axis instead: for one output
// plane it keeps 8 (AVX-512) or 4 (AVX2, SSE) output channels x 2 row chunks
// of sums in vector registers while it walks the input channels and the 27
// taps, and writes libtorch's (N, C, D, H, W) layout directly.
#include "conv3d_weight_grad.h"  // Conv3x3x3Shape, padded_row, conv3x3x3_vector_width

#include <cstdint>
#include <vector>

namespace umrflow::model {

/// Y[n][o][z][y][x] = bias[o] + sum over i, kd, kh, kw of
///   W[o][i][kd][kh][kw] * X[n][i][z + kd - 1][y + kh - 1][x + kw - 1]
/// (X zero outside its box), written to `output`, (N, out, D, H, W),
/// overwritten. `padded_input` is X laid out as conv3x3x3_weight_grad() reads
/// it: (N, in, D+2, H+2, padded_row(W)), a zero plane before and after along D
/// and H, and each row a zero, the W values, then zeros. `weight` is (out, in,
/// 3, 3, 3); `bias` has `out` floats or is null.
///
/// Each (sample, block of output channels, output plane) is one task, summed
/// in a fixed order (bias, then input channels, then taps), so the result is
/// the same for any thread count; `run_tasks(count, fn)` must call fn(t) once
/// for every t in [0, count), on any threads. `width` as in
/// conv3x3x3_weight_grad(): 0 runs the CPU's widest.
template <typename RunTasks>
void conv3x3x3_forward(const Conv3x3x3Shape& s, const float* padded_input, const float* weight, const float* bias, float* output,
                       RunTasks&& run_tasks, int width = 0);

/// Output channels per task at vector width `width`: 8 for AVX-512's 32
/// vector registers, 4 for the 16 of AVX2 and SSE.
int conv3x3x3_forward_block(int width);

/// `weight` rearranged for the kernel: per block of conv3x3x3_forward_block()
/// output channels, (in, 27, block), zero for channels past `out`.
std::vector<float> conv3x3x3_pack_weight(const Conv3x3x3Shape& s, const float* weight, int width);

/// One task of conv3x3x3_forward(): sample `n`, output channels
/// [o0, o0 + count) with count <= the block, output plane `z`;
/// `packed_weight` from conv3x3x3_pack_weight() at the same `width`.
void conv3x3x3_forward_task(const Conv3x3x3Shape& s, const float* padded_input, const float* packed_weight, const float* bias,
                            float* output, std::int64_t n, std::int64_t o0, std::int64_t count, std::int64_t z, int width);

template <typename RunTasks>
void conv3x3x3_forward(const Conv3x3x3Shape& s, const float* padded_input, const float* weight, const float* bias, float* output,
                       RunTasks&& run_tasks, int width) {
  if (width <= 0 || width > conv3x3x3_vector_width()) width = conv3x3x3_vector_width();  // as the tasks run it
  const std::int64_t block = conv3x3x3_forward_block(width), blocks = (s.out + block - 1) / block;
  const std::vector<float> packed = conv3x3x3_pack_weight(s, weight, width);
  run_tasks(s.n * blocks * s.d, [&](std::int64_t t) {
    const std::int64_t z = t % s.d, o0 = (t / s.d % blocks) * block, n = t / (s.d * blocks);
    conv3x3x3_forward_task(s, padded_input, packed.data(), bias, output, n, o0, s.out - o0 < block ? s.out - o0 : block, z, width);
  });
}

}  // namespace umrflow::model
