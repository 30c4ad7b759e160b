// `umrflow weights`: moving weights between run checkpoints and PyTorch.
#include <torch/torch.h>

#include <cstdio>
#include <set>

#include "common.h"
#include "io/state_dict.h"

namespace umrflow::cli {

namespace {

bool is_run_checkpoint(const std::string& path) {
  try {
    torch::serialize::InputArchive a;
    a.load_from(path);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

/// Module weights of a run checkpoint, in the order they were written.
io::NamedTensors checkpoint_tensors(const std::string& path) {
  torch::serialize::InputArchive a;
  try {
    a.load_from(path);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read run checkpoint '" + path + "': " + e.what());
  }
  io::NamedTensors out;
  for (const auto& k : a.keys()) {
    if (k.rfind("umrflow.", 0) == 0 || k == "optimizer") continue;
    torch::Tensor t;
    if (a.try_read(k, t)) out.emplace_back(k, t);
  }
  return out;
}

std::string shape_text(const torch::Tensor& t) {
  std::string s = "(";
  for (std::int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + (t.dim() == 1 ? ",)" : ")");
}

}  // namespace

int weights_export(const std::string& checkpoint, const std::string& out, std::string module) {
  const io::NamedTensors all = checkpoint_tensors(checkpoint);
  std::set<std::string> modules;
  for (const auto& [k, t] : all) modules.insert(k.substr(0, k.find('.')));
  std::string listed;
  for (const auto& m : modules) listed += (listed.empty() ? "" : ", ") + m;
  if (module.empty()) {
    if (modules.size() != 1)
      throw std::runtime_error("'" + checkpoint + "' holds the modules " + listed + "; choose one with --module");
    module = *modules.begin();
  }
  if (!modules.count(module))
    throw std::runtime_error("'" + checkpoint + "' has no module '" + module + "' (it holds " + listed + ")");
  io::NamedTensors picked;
  for (const auto& [k, t] : all)
    if (k.rfind(module + ".", 0) == 0) picked.emplace_back(k.substr(module.size() + 1), t);
  io::write_state_dict(out, picked);
  std::printf("%s: %zu tensors of module '%s' (load in Python with torch.load)\n", out.c_str(), picked.size(), module.c_str());
  return 0;
}

int weights_import(const std::string& state_dict, const std::string& out, const std::string& module) {
  const io::NamedTensors tensors = io::read_state_dict(state_dict);
  torch::serialize::OutputArchive archive;
  for (const auto& [k, t] : tensors) archive.write(module + "." + k, t);
  archive.write("umrflow.epoch", torch::tensor(std::int64_t{0}));
  const std::string tmp = out + ".tmp";
  archive.save_to(tmp);
  std::rename(tmp.c_str(), out.c_str());
  std::printf("%s: %zu tensors as module '%s' (use it as `init: {from: %s}`)\n", out.c_str(), tensors.size(), module.c_str(),
              out.c_str());
  return 0;
}

int weights_list(const std::string& file) {
  const io::NamedTensors tensors = is_run_checkpoint(file) ? checkpoint_tensors(file) : io::read_state_dict(file);
  std::int64_t n = 0;
  for (const auto& [k, t] : tensors) {
    std::printf("%s\t%s\t%s\n", k.c_str(), shape_text(t).c_str(), c10::toString(t.scalar_type()));
    if (t.is_floating_point()) n += t.numel();
  }
  std::fprintf(stderr, "%zu tensors, %lld floating-point values\n", tensors.size(), static_cast<long long>(n));
  return 0;
}

}  // namespace umrflow::cli
