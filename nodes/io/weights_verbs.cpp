// `umrflow weights export|import|list`: moving weights between run
// checkpoints and PyTorch state dicts (verbs of the io formats).
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "builtin.h"
#include "io/state_dict.h"
#include "umrflow/archive_check.h"
#include "umrflow/files.h"
#include "umrflow/graph.h"
#include "umrflow/registry.h"

namespace umrflow::io {

bool is_run_checkpoint(const std::string& path) {
  // Damage is reported as such, before libtorch's reader allocates whatever
  // a record declares.
  if (starts_like_zip(path)) check_zip_archive(path);
  try {
    torch::serialize::InputArchive a;
    a.load_from(path);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::size_t import_state_dict(const std::string& state_dict, const std::string& out, const std::string& module) {
  const NamedTensors tensors = read_state_dict(state_dict);
  torch::serialize::OutputArchive archive;
  for (const auto& [k, t] : tensors) archive.write(module + "." + k, t);
  archive.write("umrflow.epoch", torch::tensor(std::int64_t{0}));
  std::ostringstream bytes;  // in memory: libtorch's file writer cannot report a full disk (instance.cpp)
  archive.save_to(bytes);
  write_file_atomically(out, bytes.str());
  return tensors.size();
}

}  // namespace umrflow::io

namespace umrflow::nodes {

namespace {

using io::is_run_checkpoint;

/// Module weights of a run checkpoint, in the order they were written.
io::NamedTensors checkpoint_tensors(const std::string& path) {
  torch::serialize::InputArchive a;
  try {
    check_zip_archive(path);
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

int weights_export(const std::string& checkpoint, const std::string& out, std::string module) {
  const io::NamedTensors all = checkpoint_tensors(checkpoint);
  std::vector<std::string> modules;  // in the order the checkpoint holds them
  for (const auto& [k, t] : all) {
    const std::string m = k.substr(0, k.find('.'));
    if (std::find(modules.begin(), modules.end(), m) == modules.end()) modules.push_back(m);
  }
  std::string listed;
  for (const auto& m : modules) listed += (listed.empty() ? "" : ", ") + m;
  // --module a,b picks modules; without it every module, merged in checkpoint order.
  std::vector<std::string> picked_modules;
  if (module.empty()) {
    picked_modules = modules;
  } else {
    std::stringstream s(module);
    for (std::string m; std::getline(s, m, ',');) {
      if (std::find(modules.begin(), modules.end(), m) == modules.end())
        throw std::runtime_error("'" + checkpoint + "' has no module '" + m + "' (it holds " + listed + ")");
      picked_modules.push_back(m);
    }
  }
  io::NamedTensors picked;
  std::map<std::string, std::string> owner;
  for (const auto& m : picked_modules)
    for (const auto& [k, t] : all) {
      if (k.rfind(m + ".", 0) != 0) continue;
      const std::string name = k.substr(m.size() + 1);
      if (owner.count(name))
        throw std::runtime_error("modules '" + owner[name] + "' and '" + m + "' of '" + checkpoint + "' both hold '" + name +
                                 "'; choose with --module (it holds " + listed + ")");
      owner[name] = m;
      picked.emplace_back(name, t);
    }
  io::write_state_dict(out, picked);
  std::string names;
  for (const auto& m : picked_modules) names += (names.empty() ? "" : ", ") + m;
  std::printf("%s: %zu tensors of module(s) %s (load in Python with torch.load)\n", out.c_str(), picked.size(), names.c_str());
  return 0;
}

int weights_import(const std::string& state_dict, const std::string& out, const std::string& module) {
  if (is_run_checkpoint(state_dict))
    throw std::runtime_error("'" + state_dict + "' is an umrflow run checkpoint, not a PyTorch state dict: give it as init.from "
                             "directly, or turn it into a state dict with `umrflow weights export`");
  if (!is_valid_id(module))
    throw std::runtime_error("--module '" + module + "' is not a module id (a letter or '_', then letters, digits, '_' or '-'): " +
                             "give the id the graph declares under `modules:`, e.g. --module net");
  const std::size_t n = io::import_state_dict(state_dict, out, module);
  std::printf("%s: %zu tensors as module '%s' (use it as `init: {from: %s}`)\n", out.c_str(), n, module.c_str(), out.c_str());
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

}  // namespace

void register_io_verbs(Registry& registry) {
  const std::string group = "move weights between run checkpoints and PyTorch state dicts";
  VerbSpec ex;
  ex.path = {"weights", "export"};
  ex.group_summary = group;
  ex.summary = "write a run checkpoint's modules as one PyTorch state dict (the authors' key names)";
  ex.options = {param::text("checkpoint", std::nullopt, "run checkpoint (last.pt, epoch_NNNN.pt)"),
                param::text("out", std::nullopt, "file to write; Python: sd = torch.load(out); model.load_state_dict(sd)"),
                param::text("module", "", "module ids, comma-separated (default: every module, merged in checkpoint order; a name held twice is an error)")};
  ex.options.push_back(param::boolean("overwrite", false, "replace OUT when it exists"));
  ex.positional = {"checkpoint", "out"};
  ex.existing_files = {"checkpoint"};
  ex.output_files = {"out"};
  ex.run = [](const VerbCall& c) {
    return weights_export(c.options.get_text("checkpoint"), c.options.get_text("out"), c.options.get_text("module"));
  };
  registry.add_verb(std::move(ex));

  VerbSpec im;
  im.path = {"weights", "import"};
  im.summary = "turn a PyTorch state dict into a checkpoint for `init: {from: ...}`";
  im.options = {param::text("state_dict", std::nullopt,
                            "file saved by torch.save(model.state_dict(), f): an OrderedDict or dict, possibly under "
                            "'state_dict', with 'module.' or 'backbone.' prefixes (stripped)"),
                param::text("out", std::nullopt, "checkpoint to write"),
                param::text("module", std::nullopt, "module id the weights belong to in the graph")};
  im.options.push_back(param::boolean("overwrite", false, "replace OUT when it exists"));
  im.positional = {"state_dict", "out"};
  im.existing_files = {"state_dict"};
  im.output_files = {"out"};
  im.run = [](const VerbCall& c) {
    return weights_import(c.options.get_text("state_dict"), c.options.get_text("out"), c.options.get_text("module"));
  };
  registry.add_verb(std::move(im));

  VerbSpec ls;
  ls.path = {"weights", "list"};
  ls.summary = "print the tensors of a checkpoint or state dict: key, shape, dtype";
  ls.options = {param::text("file", std::nullopt, "run checkpoint or PyTorch state dict")};
  ls.positional = {"file"};
  ls.existing_files = {"file"};
  ls.run = [](const VerbCall& c) { return weights_list(c.options.get_text("file")); };
  registry.add_verb(std::move(ls));

  register_verify_verb(registry);
}

}  // namespace umrflow::nodes
