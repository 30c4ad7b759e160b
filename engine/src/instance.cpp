#include "instance.h"

#include <ATen/record_function.h>
#include <fnmatch.h>

#include <filesystem>
#include <sstream>

#include "precision.h"
#include "umrflow/archive_check.h"
#include "umrflow/digest.h"
#include "umrflow/files.h"
#include "umrflow/random.h"

namespace umrflow {

namespace {
std::unique_ptr<Node> create(const NodeDecl& d) {
  std::unique_ptr<Node> node = d.spec->create(d.params);
  if (!node) throw std::runtime_error("node '" + d.id + "' (" + d.type + "): its factory returned nothing");
  node->set_id(d.id);
  return node;
}
template <typename T>
T* as(const std::unique_ptr<Node>& node, const NodeDecl& d, const char* kind) {
  auto* p = dynamic_cast<T*>(node.get());
  if (!p) throw std::runtime_error("node '" + d.id + "' (" + d.type + ") is declared a " + kind + " node but does not implement it");
  return p;
}
bool matches_any(const std::string& name, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns)
    if (fnmatch(p.c_str(), name.c_str(), 0) == 0) return true;
  return false;
}
}  // namespace

Instance::Instance(const Graph& graph, torch::Device device) : Instance(graph, device, !device.is_cpu()) {}

Instance::Instance(const Graph& graph, torch::Device device, bool defer_checks)
    : graph_(graph), device_(device), defer_checks_(defer_checks) {
  for (const auto& m : graph.modules) {
    // Weight initialisation draws from torch's global generator: seed it per
    // module so the same seed gives the same initial weights in every run.
    torch::manual_seed(derive_seed(graph.seed, -1, 0, m.id));
    auto node = create(m);
    auto* mod = as<ModuleNode>(node, m, "module");
    mod->module().to(device);
    if (graph.execution.channels_last) to_channels_last(mod->module());
    if (m.frozen)
      for (auto& p : mod->module().parameters()) p.set_requires_grad(false);
    modules_[m.id] = std::move(node);
  }
  const ModuleNode::ModuleLookup lookup = [this](const std::string& id) -> ModuleNode* {
    auto it = modules_.find(id);
    return it == modules_.end() ? nullptr : static_cast<ModuleNode*>(it->second.get());
  };
  for (const auto& m : graph.modules) {
    try {
      static_cast<ModuleNode*>(modules_.at(m.id).get())->link(lookup);
    } catch (const std::exception& e) {
      throw std::runtime_error("module '" + m.id + "' (" + m.type + "): " + e.what());
    }
  }
  source_owner_ = create(graph.source());
  source_ = as<SourceNode>(source_owner_, graph.source(), "source");
  for (std::size_t i = 1; i + 1 < graph.data.size(); ++i) {
    transforms_.push_back(create(graph.data[i]));
    as<SampleNode>(transforms_.back(), graph.data[i], "sample");
  }
  for (const auto& s : graph.step) {
    const auto& dep = graph.train.accumulate_dependent;
    dependent_.push_back(std::find(dep.begin(), dep.end(), s.id) != dep.end());
    if (s.is(NodeKind::call)) {
      steps_.push_back(nullptr);
      continue;
    }
    steps_.push_back(create(s));
    as<StepNode>(steps_.back(), s, "step");
  }
}

DataPlane Instance::data_plane(bool training, std::int64_t prefetch) const {
  DataPlane p;
  p.source = source_;
  p.source_id = graph_.source().id;
  p.source_type = graph_.source().type;
  for (std::size_t i = 0; i < transforms_.size(); ++i)
    p.transforms.push_back({static_cast<SampleNode*>(transforms_[i].get()), graph_.data[i + 1].id, graph_.data[i + 1].type});
  p.batch_id = graph_.batch().id;
  p.batch_size = graph_.batch().params.get_int("size");
  p.drop_last = graph_.batch().params.get_bool("drop_last");
  p.prefetch = std::max(prefetch, p.batch_size);
  p.seed = graph_.seed;
  p.training = training;
  return p;
}

Packet Instance::run_node(std::size_t i, const Lookup& lookup, const Packet& batch, std::int64_t epoch, std::int64_t batch_index,
                          bool training) const {
  const NodeDecl& d = graph_.step[i];
  ModuleNode* module = nullptr;
  std::vector<ChainLink> then;
  if (d.is(NodeKind::call)) {
    module = static_cast<ModuleNode*>(modules_.at(d.module).get());
    for (const auto& id : d.then)
      then.push_back({static_cast<ModuleNode*>(modules_.at(id).get()), graph_.find(id)->spec->inputs.size()});
  }
  try {
    std::vector<Packet> inputs;
    for (const auto& port : *d.ports) {
      bool any = false;
      for (const auto& ref : d.inputs) {
        if (ref.port != port.name) continue;
        const Packet& src = lookup(ref.node);
        any = true;
        if (ref.key.empty()) {
          inputs.push_back(src);
        } else {
          Packet p;
          p.samples = src.samples;
          p.tensors[port.needs.empty() ? ref.key : port.needs.front().key] = src.at(ref.key);
          inputs.push_back(std::move(p));
        }
      }
      if (!any) inputs.emplace_back();
    }
    Context ctx(graph_.seed, epoch, batch_index, d.id, training, device_);
    std::optional<DeferralScope> deferral;
    if (defer_checks_) deferral.emplace(&checks_, d.id, d.type, batch, batch_index);
    RECORD_USER_SCOPE("node " + d.id);  // umrflow/op_profile.h
    Packet out = module ? call_module(*module, then, d.params, inputs, ctx) : static_cast<StepNode*>(steps_[i].get())->run(inputs, ctx);
    if (out.samples.empty()) out.samples = batch.samples;
    return out;
  } catch (const NodeError&) {
    throw;
  } catch (const std::exception& e) {
    throw NodeError(d.id, d.type, batch.sample_names(), e.what());
  }
}

std::map<std::string, Packet> Instance::run_step(const Packet& batch, std::int64_t epoch, std::int64_t batch_index,
                                                 bool training) const {
  std::map<std::string, Packet> outs;
  const std::string& batch_id = graph_.batch().id;
  const Lookup lookup = [&](const std::string& id) -> const Packet& { return id == batch_id ? batch : outs.at(id); };
  for (std::size_t i = 0; i < graph_.step.size(); ++i) outs[graph_.step[i].id] = run_node(i, lookup, batch, epoch, batch_index, training);
  return outs;
}

std::vector<torch::Tensor> Instance::trainable_parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& m : graph_.modules) {
    if (m.frozen) continue;
    for (auto& p : static_cast<ModuleNode*>(modules_.at(m.id).get())->module().parameters())
      if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

std::vector<torch::Tensor> Instance::buffers() const {
  std::vector<torch::Tensor> out;
  for (const auto& m : graph_.modules)
    for (auto& b : static_cast<ModuleNode*>(modules_.at(m.id).get())->module().buffers()) out.push_back(b);
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> Instance::weights() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  // PyTorch's state_dict order: a module's own parameters, its own buffers, then its children.
  std::function<void(torch::nn::Module&, const std::string&)> walk = [&](torch::nn::Module& mod, const std::string& prefix) {
    for (const auto& p : mod.named_parameters(false)) out.emplace_back(prefix + p.key(), p.value());
    for (const auto& b : mod.named_buffers(false)) out.emplace_back(prefix + b.key(), b.value());
    for (const auto& c : mod.named_children()) walk(*c.value(), prefix + c.key() + ".");
  };
  for (const auto& m : graph_.modules) walk(static_cast<ModuleNode*>(modules_.at(m.id).get())->module(), m.id + ".");
  return out;
}

void Instance::initialise_modules() const {
  for (const auto& m : graph_.modules) {
    if (!m.has_init) continue;
    if (!std::filesystem::exists(m.init.from))
      throw std::runtime_error("module '" + m.id + "': init checkpoint '" + m.init.from +
                               "' does not exist (run the earlier stage first, or fix `init.from`)");
    torch::serialize::InputArchive archive;
    try {
      check_weights_file(m.init.from, m.id);
      archive.load_from(m.init.from);
    } catch (const std::exception& e) {
      throw std::runtime_error("module '" + m.id + "': cannot read checkpoint '" + m.init.from + "': " + e.what());
    }
    auto& mod = static_cast<ModuleNode*>(modules_.at(m.id).get())->module();
    torch::NoGradGuard no_grad;
    std::size_t taken = 0;
    auto take = [&](const std::string& name, torch::Tensor& target) {
      if (!matches_any(name, m.init.include) || matches_any(name, m.init.exclude)) return;
      torch::Tensor t;
      const std::string key = m.init.prefix + "." + name;
      if (!archive.try_read(key, t))
        throw std::runtime_error("module '" + m.id + "': checkpoint '" + m.init.from + "' has no tensor '" + key + "'");
      if (t.sizes() != target.sizes()) {
        std::ostringstream s;
        s << "module '" << m.id << "': '" << key << "' in '" << m.init.from << "' has shape " << t.sizes()
          << ", the module expects " << target.sizes();
        throw std::runtime_error(s.str());
      }
      if (!torch::isfinite(t).all().item<bool>())
        throw std::runtime_error("module '" + m.id + "': '" + key + "' in '" + m.init.from +
                                 "' holds NaN or infinite values (the run that wrote it diverged); take an earlier checkpoint");
      target.copy_(t);
      ++taken;
    };
    for (auto& p : mod.named_parameters()) take(p.key(), p.value());
    for (auto& b : mod.named_buffers()) take(b.key(), b.value());
    if (taken == 0)
      throw std::runtime_error("module '" + m.id + "': `init` include/exclude patterns select no tensor");
  }
}

void Instance::set_training(bool training) const {
  for (const auto& m : graph_.modules) static_cast<ModuleNode*>(modules_.at(m.id).get())->module().train(training && !m.frozen);
}

Instance::CheckpointState Instance::load_checkpoint(const std::string& path, torch::optim::Optimizer* optimizer, std::int64_t graph_hash,
                                       const std::function<void(const std::string&)>& warn) const {
  torch::serialize::InputArchive archive;
  try {
    check_zip_archive(path);
    check_recorded_digest(path);
    archive.load_from(path);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read checkpoint '" + path + "': " + e.what());
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : weights()) {
    torch::Tensor t;
    if (!archive.try_read(name, t))
      throw std::runtime_error("checkpoint '" + path + "' has no tensor '" + name + "': it was written by another graph");
    if (t.sizes() != target.sizes())
      throw std::runtime_error("checkpoint '" + path + "': '" + name + "' has shape " + c10::str(t.sizes()) + ", the graph's module " +
                               c10::str(target.sizes()));
    target.copy_(t);
  }
  if (optimizer) {
    torch::serialize::InputArchive opt;
    if (!archive.try_read("optimizer", opt)) throw std::runtime_error("checkpoint '" + path + "' holds no optimizer state");
    try {
      optimizer->load(opt);
    } catch (const std::exception&) {
      throw std::runtime_error("checkpoint '" + path + "': its optimizer state does not fit this graph's optimizer "
                               "(was train.optimizer.type or a module's freezing changed? start a new run with init.from instead)");
    }
  }
  torch::Tensor epoch, hash, best;
  if (!archive.try_read("umrflow.epoch", epoch)) throw std::runtime_error("checkpoint '" + path + "' holds no epoch");
  if (archive.try_read("umrflow.graph_hash", hash) && hash.item<std::int64_t>() != graph_hash)
    warn("note: the graph differs from the one that wrote " + path + " (a changed setting?); continuing with the current graph");
  CheckpointState state;
  state.epoch = epoch.item<std::int64_t>();
  if (archive.try_read("umrflow.best", best)) state.best = best.item<double>();
  return state;
}

std::map<std::string, double> Instance::finish(const std::string& run_dir) const {
  std::map<std::string, double> summary;
  for (std::size_t i = 0; i < graph_.step.size(); ++i)
    if (steps_[i]) {
      const NodeDecl& d = graph_.step[i];
      try {
        for (const auto& [k, v] : static_cast<StepNode*>(steps_[i].get())->finish(run_dir)) summary[d.id + "." + k] = v;
      } catch (const std::exception& e) {
        throw NodeError(d.id, d.type, "", std::string("while finishing: ") + e.what());
      }
    }
  return summary;
}

void save_checkpoint(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                     torch::optim::Optimizer* optimizer) {
  torch::serialize::OutputArchive archive;
  for (const auto& [name, t] : tensors) archive.write(name, t.detach().cpu());
  if (optimizer) {
    torch::serialize::OutputArchive opt;
    optimizer->save(opt);
    archive.write("optimizer", opt);
  }
  // Serialised in memory first: libtorch's file writer finishes the archive in
  // a destructor, where a full disk ends the process (std::terminate) instead
  // of throwing; write_temporary_file() reports it as an error naming the file.
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string data = bytes.str();
  // The ledger accepts old and new digest while the rename happens (digest.h).
  const std::string tmp = path + ".tmp";
  write_temporary_file(tmp, data);
  const std::string digest = sha256_hex(data.data(), data.size());
  record_digest(path, digest, /*keep_previous=*/true);
  commit_file(tmp, path);
  record_digest(path, digest, /*keep_previous=*/false);
}

}  // namespace umrflow
