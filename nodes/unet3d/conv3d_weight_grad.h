#pragma once
// The weight gradient of a 3x3x3 convolution (stride 1, padding 1, dilation
// 1, no groups) with few input channels, on the CPU, without libtorch.
//
// oneDNN 2.6 (libtorch 1.13) has no vector kernel for the weight gradient of a
// 3D convolution with fewer than 16 input channels and falls back to im2col and
// a matrix product: the network's first convolution (4 modalities in) and the
// 8-channel convolutions of narrow networks. At a 32^3 batch of two, 8 to 8
// channels, that fallback takes 15 ms of a 100 ms training step on one core.
// This kernel walks the rows of the output gradient and the (zero-padded)
// input once per tap row and keeps the sums for 8 (AVX-512) or 4 (AVX2, SSE)
// output channels x 3 taps in vector registers.
#include <cstdint>

namespace umrflow::model {

/// Shape of one weight-gradient problem: input (N, in, D, H, W), output
/// gradient (N, out, D, H, W), weight gradient (out, in, 3, 3, 3).
struct Conv3x3x3Shape {
  std::int64_t n = 0, in = 0, out = 0, d = 0, h = 0, w = 0;
};

/// Row length, in floats, of the padded input that conv3x3x3_weight_grad()
/// reads: W rounded up to a multiple of 16, plus 2 for the padding of the x
/// axis.
std::int64_t padded_row(std::int64_t w);

/// dW[o][i][kd][kh][kw] = sum over n, z, y, x of
///   dY[n][o][z][y][x] * X[n][i][z + kd - 1][y + kh - 1][x + kw - 1]
/// (X zero outside its box), written to `grad_weight` (out*in*27 floats,
/// overwritten). `padded_input` is X with one zero plane before and after each
/// axis and its rows zero-filled to padded_row(W): (N, in, D+2, H+2,
/// padded_row(W)). `grad_output` is dY with rows of padded_row(W) - 2 floats,
/// zero past W: (N, out, D, H, padded_row(W) - 2).
///
/// Each (input channel, block of 8 output channels) is summed by one task in
/// an order that does not depend on how tasks are spread over threads, so the
/// result is the same for any thread count; `run_tasks(count, fn)` must call
/// fn(t) once for every t in [0, count), on any threads. `width` is the
/// vector width in floats (16: AVX-512, 8: AVX2 + FMA, 4: SSE or the
/// compiler's generic vectors); 0 or a width above conv3x3x3_vector_width()
/// runs that one. Widths sum in different orders: two CPUs may differ in
/// the last bits.
template <typename RunTasks>
void conv3x3x3_weight_grad(const Conv3x3x3Shape& s, const float* padded_input, const float* grad_output, float* grad_weight,
                           RunTasks&& run_tasks, int width = 0);

/// The widest vector width, in floats, this CPU runs the kernel with: 16, 8 or 4.
int conv3x3x3_vector_width();

/// One task of conv3x3x3_weight_grad(): input channel `i`, output channels
/// [o0, o0 + count) with count <= 8.
void conv3x3x3_weight_grad_task(const Conv3x3x3Shape& s, const float* padded_input, const float* grad_output, float* grad_weight,
                                std::int64_t i, std::int64_t o0, std::int64_t count, int width);

template <typename RunTasks>
void conv3x3x3_weight_grad(const Conv3x3x3Shape& s, const float* padded_input, const float* grad_output, float* grad_weight,
                           RunTasks&& run_tasks, int width) {
  if (width <= 0) width = conv3x3x3_vector_width();
  const std::int64_t blocks = (s.out + 7) / 8;
  run_tasks(s.in * blocks, [&](std::int64_t t) {
    const std::int64_t o0 = (t % blocks) * 8;
    conv3x3x3_weight_grad_task(s, padded_input, grad_output, grad_weight, t / blocks, o0, s.out - o0 < 8 ? s.out - o0 : 8, width);
  });
}

}  // namespace umrflow::model
