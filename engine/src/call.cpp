// The `call` step node: a module's forward under the call's settings.
#include <functional>
#include <memory>

#include <torch/torch.h>

#include "instance.h"

namespace umrflow {

namespace {

/// Window starts along one axis, as MONAI's dense patch slices: a step of
/// int(roi * (1 - overlap)) (at least 1), the last start clamped so the window
/// ends at the border.
std::vector<std::int64_t> window_starts(std::int64_t size, std::int64_t roi, double overlap) {
  if (size <= roi) return {0};
  const std::int64_t step = std::max<std::int64_t>(1, static_cast<std::int64_t>(roi * (1.0 - overlap)));
  const std::int64_t n = (size - roi + step - 1) / step + 1;
  std::vector<std::int64_t> starts;
  for (std::int64_t k = 0; k < n; ++k) starts.push_back(std::min(k * step, size - roi));
  return starts;
}

using Forward = std::function<Packet(const std::vector<Packet>&)>;

Packet sliding_window(const Forward& forward, const std::vector<Packet>& inputs, const std::vector<std::int64_t>& roi, double overlap,
                      std::int64_t batch) {
  const std::int64_t r = static_cast<std::int64_t>(roi.size());
  // The spatial size: the trailing axes of the first input tensor of rank > window rank + 1.
  std::vector<std::int64_t> size;
  for (const auto& p : inputs)
    for (const auto& [k, t] : p.tensors)
      if (size.empty() && t.dim() >= r + 2) size.assign(t.sizes().end() - r, t.sizes().end());
  if (size.empty()) throw std::runtime_error("call: `window` has " + std::to_string(r) + " axes but no input tensor has that many spatial axes");
  // Pad (zeros, split evenly) where the image is smaller than the window; crop back at the end.
  std::vector<std::int64_t> pad_lo(r, 0), padded = size;
  std::vector<std::int64_t> pad_spec;  // F.pad order: last axis first
  for (std::int64_t a = r - 1; a >= 0; --a) {
    const std::int64_t extra = std::max<std::int64_t>(0, roi[a] - size[a]);
    pad_lo[a] = extra / 2;
    padded[a] = size[a] + extra;
    pad_spec.push_back(extra / 2);
    pad_spec.push_back(extra - extra / 2);
  }
  auto is_spatial = [&](const torch::Tensor& t) {
    return t.dim() >= r + 2 && std::equal(size.begin(), size.end(), t.sizes().end() - r);
  };
  std::vector<Packet> full = inputs;
  for (auto& p : full)
    for (auto& [k, t] : p.tensors)
      if (is_spatial(t)) t = torch::constant_pad_nd(t, pad_spec, 0);
  std::vector<std::vector<std::int64_t>> starts;
  for (std::int64_t a = 0; a < r; ++a) starts.push_back(window_starts(padded[a], roi[a], overlap));
  // Every window's start, the last axis fastest.
  std::vector<std::vector<std::int64_t>> windows;
  for (std::vector<std::size_t> at(r, 0);;) {
    std::vector<std::int64_t> w(r);
    for (std::int64_t a = 0; a < r; ++a) w[a] = starts[a][at[a]];
    windows.push_back(w);
    std::int64_t a = r - 1;
    while (a >= 0 && ++at[a] == starts[a].size()) at[a--] = 0;
    if (a < 0) break;
  }
  auto narrowed = [&](torch::Tensor t, const std::vector<std::int64_t>& w, std::int64_t offset) {
    for (std::int64_t a = 0; a < r; ++a) t = t.narrow(offset + a, w[a], roi[a]);
    return t;
  };
  std::map<std::string, torch::Tensor> sum;
  torch::Tensor count = torch::zeros(padded);
  for (std::size_t first = 0; first < windows.size(); first += static_cast<std::size_t>(batch)) {
    const std::size_t k = std::min(windows.size() - first, static_cast<std::size_t>(batch));
    // Each input row followed by its k windows: row n, window j at n * k + j.
    std::vector<Packet> part = full;
    for (auto& p : part)
      for (auto& [key, t] : p.tensors)
        if (t.dim() >= r + 2 && std::equal(padded.begin(), padded.end(), t.sizes().end() - r)) {
          if (k == 1) {
            t = narrowed(t, windows[first], t.dim() - r);
            continue;
          }
          std::vector<torch::Tensor> parts;
          for (std::size_t j = 0; j < k; ++j) parts.push_back(narrowed(t, windows[first + j], t.dim() - r));
          t = torch::stack(parts, 1).flatten(0, 1);
        }
    Packet out = forward(part);
    for (auto& [key, y] : out.tensors) {
      if (y.dim() < r + 2 || !std::equal(roi.begin(), roi.end(), y.sizes().end() - r)) continue;
      torch::Tensor& s = sum[key];
      const torch::Tensor rows = k == 1 ? y.unsqueeze(1) : y.unflatten(0, {y.size(0) / static_cast<std::int64_t>(k), static_cast<std::int64_t>(k)});
      if (!s.defined()) {
        auto shape = rows.select(1, 0).sizes().vec();
        std::copy(padded.begin(), padded.end(), shape.end() - r);
        s = torch::zeros(shape, y.options().dtype(torch::kFloat32));
        count = count.to(s.device());
      }
      for (std::size_t j = 0; j < k; ++j) narrowed(s, windows[first + j], s.dim() - r).add_(rows.select(1, j).to(torch::kFloat32));
    }
    for (std::size_t j = 0; j < k; ++j) narrowed(count, windows[first + j], 0).add_(1.0);
  }
  Packet result;
  for (auto& [k, s] : sum) {
    torch::Tensor y = s / count;
    for (std::int64_t a = 0; a < r; ++a) y = y.narrow(y.dim() - r + a, pad_lo[a], size[a]);
    result.tensors[k] = y.contiguous();
  }
  return result;
}

/// Puts `module` in eval mode for the scope, then back to what it was.
struct EvalMode {
  explicit EvalMode(torch::nn::Module& m, bool on) : module(m) {
    for (const auto& sub : m.modules()) was.push_back(sub->is_training());
    if (on) m.eval();
  }
  ~EvalMode() {
    auto subs = module.modules();
    for (std::size_t i = 0; i < subs.size(); ++i) subs[i]->train(was[i]);
  }
  torch::nn::Module& module;
  std::vector<bool> was;
};

}  // namespace

Packet call_module(ModuleNode& module, const std::vector<ChainLink>& then, const Params& call, const std::vector<Packet>& inputs,
                   Context& ctx) {
  const bool grad = call.get_bool("grad") && torch::GradMode::is_enabled();
  torch::AutoGradMode mode(grad);
  const bool eval_mode = call.get_bool("eval");
  std::vector<std::unique_ptr<EvalMode>> eval;
  eval.push_back(std::make_unique<EvalMode>(module.module(), eval_mode));
  for (const auto& link : then) eval.push_back(std::make_unique<EvalMode>(link.module->module(), eval_mode));
  const Forward forward = [&](const std::vector<Packet>& in) {
    Packet out = module.forward(in, ctx);
    for (const auto& link : then) {
      std::vector<Packet> next(std::max<std::size_t>(link.ports, 1));
      next[0] = std::move(out);
      out = link.module->forward(next, ctx);
    }
    return out;
  };
  const auto& window = call.get_ints("window");
  if (window.empty()) return forward(inputs);
  return sliding_window(forward, inputs, window, call.get_number("overlap"), call.get_int("window_batch"));
}

}  // namespace umrflow
