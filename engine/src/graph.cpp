// Graph validation: every check runs, every problem is reported, nothing is read.
#include "umrflow/graph.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include "umrflow/bind.h"
#include "umrflow/registry.h"

namespace umrflow {

namespace fs = std::filesystem;

const NodeDecl* Graph::find(const std::string& id) const {
  for (const auto* list : {&modules, &data, &step})
    for (const auto& n : *list)
      if (n.id == id) return &n;
  return nullptr;
}

namespace {

const std::vector<std::string> kTopKeys = {"umrflow", "name", "seed", "plugins", "modules", "data", "step", "execution", "train"};

const std::vector<ParamSpec>& top_specs() {
  static const std::vector<ParamSpec> specs = {
      param::integer("umrflow", std::nullopt, "schema version of the graph file; this build reads 1").range(1, 1),
      param::text("name", "", "run name; runs/<name>/ holds its outputs (default: the file's stem)"),
      param::integer("seed", 0, "the one seed from which every random draw of the run is derived").min(0),
  };
  return specs;
}

// The settings sections, each key declared once and bound to its member.

const ParamBindings<ExecutionSettings>& execution_bindings() {
  static const ParamBindings<ExecutionSettings> b = [] {
    using E = ExecutionSettings;
    ParamBindings<E> d;
    d.bind(&E::device, param::choice("device", "cpu", {"cpu", "cuda", "auto"}, "where the step plane runs; auto picks cuda when present"));
    d.bind(&E::prefetch, param::integer("prefetch", 8, "most samples in flight on the data plane (at least the batch size)").min(1));
    d.bind(&E::threads, param::integer("threads", 0, "worker threads of the data plane; 0: every core, but on the CPU device only the cores the step's intra-op threads leave, plus the step's own thread").range(0, 1024));
    d.bind(&E::autocast, param::choice("autocast", "none", {"none", "bf16"},
                                       "bf16: autocast of the forward passes when training, on CUDA or the CPU (weights and optimizer stay fp32)"));
    d.bind(&E::channels_last, param::boolean("channels_last", false,
                                             "Conv3d weights and (B, C, X, Y, Z) batch tensors in channels-last-3D memory order"));
    d.bind(&E::own_kernels, param::boolean("own_kernels", true,
                                           "umrflow's own CPU kernels where a node has them (3x3x3 convolutions with few channels, "
                                           "forward and backward); false: libtorch's throughout, as PyTorch runs"));
    d.bind(&E::log_every, param::integer("log_every", 1,
                                         "check the training loss for NaN, show it and, on an accelerator, read the step nodes' value checks every "
                                         "N steps (and at each epoch's last); the steps in between never wait for the device")
                              .min(1));
    d.bind(&E::sync_bn, param::boolean("sync_bn", false,
                                       "with several ranks (torchrun, srun): BatchNorm in training normalises with the statistics of "
                                       "the global batch, every rank's rows (PyTorch's SyncBatchNorm); false: each rank's own, as DDP"));
    d.bind(&E::bucket_mb, param::number("bucket_mb", 25.0,
                                        "with several ranks: gradients are averaged in buckets of about this many MiB, each "
                                        "launched during the backward pass once its gradients are in (DDP's bucket_cap_mb); "
                                        "0: one bucket")
                              .range(0.0, 4096.0));
    return d;
  }();
  return b;
}

const ParamBindings<TrainSettings>& train_bindings() {
  static const ParamBindings<TrainSettings> b = [] {
    using T = TrainSettings;
    ParamBindings<T> d;
    d.bind(&T::epochs, param::integer("epochs", 1, "passes over the data set").min(1));
    d.bind(&T::objective, param::text("objective", std::nullopt, "step node whose scalar `loss` is minimised"));
    return d;
  }();
  return b;
}

const ParamBindings<TrainSettings>& optimizer_bindings() {
  static const ParamBindings<TrainSettings> b = [] {
    using T = TrainSettings;
    ParamBindings<T> d;
    d.bind(&T::optimizer, param::choice("type", "adamw", {"sgd", "adam", "adamw"}, "optimizer over the parameters of unfrozen modules"));
    d.bind(&T::lr, param::number("lr", 1e-3, "learning rate").min(0.0));
    d.bind(&T::weight_decay, param::number("weight_decay", 0.0, "weight decay").min(0.0));
    d.bind(&T::momentum, param::number("momentum", 0.9, "momentum (sgd only)").range(0.0, 1.0));
    return d;
  }();
  return b;
}

const ParamBindings<TrainSettings>& checkpoint_bindings() {
  static const ParamBindings<TrainSettings> b = [] {
    ParamBindings<TrainSettings> d;
    d.bind(&TrainSettings::checkpoint_every,
           param::integer("every", 1, "write a checkpoint every N epochs (the last epoch always writes one)").min(1));
    return d;
  }();
  return b;
}

const ParamBindings<TrainSettings>& schedule_bindings() {
  static const ParamBindings<TrainSettings> b = [] {
    using T = TrainSettings;
    ParamBindings<T> d;
    d.bind(&T::schedule, param::choice("type", "constant", {"constant", "warmup_cosine"},
                                       "learning rate per epoch: fixed, or linear warm-up then cosine"));
    d.bind(&T::warmup_epochs, param::integer("warmup_epochs", 0, "epochs of linear warm-up (warmup_cosine)").min(0));
    d.bind(&T::warmup_start_lr, param::number("warmup_start_lr", 0.0, "learning rate of the first epoch (warmup_cosine)").min(0.0));
    d.bind(&T::min_lr, param::number("min_lr", 0.0, "learning rate the cosine reaches at the last epoch").min(0.0));
    return d;
  }();
  return b;
}

const ParamBindings<TrainSettings>& validate_bindings() {
  static const ParamBindings<TrainSettings> b = [] {
    using T = TrainSettings;
    ParamBindings<T> d;
    d.bind(&T::validate_graph, param::text("graph", std::nullopt, "validation graph file, relative to the file that names it"));
    d.bind(&T::validate_set, param::texts("set", std::vector<std::string>{}, "PATH=VALUE overrides of the validation graph"));
    d.bind(&T::validate_every, param::integer("every", 1, "validate every N epochs (and after the last)").min(1));
    d.bind(&T::validate_metric, param::text("metric", std::nullopt, "scalar of the validation graph, as NODE.KEY (NODE for a `loss`)"));
    d.bind(&T::validate_mode, param::choice("mode", "max", {"max", "min"}, "whether a larger or a smaller metric is better"));
    return d;
  }();
  return b;
}

const ParamBindings<TrainSettings>& accumulate_bindings() {
  static const ParamBindings<TrainSettings> b = [] {
    using T = TrainSettings;
    ParamBindings<T> d;
    d.bind(&T::accumulate_groups, param::text("groups", std::nullopt,
                                              "NODE.KEY of an int64 tensor labelling entries 0 (not split) or g > 0 (group g)"));
    d.bind(&T::accumulate_slice, param::texts("slice", std::nullopt,
                                              "NODE.KEY tensors with k rows per non-zero label, in label order; pass g gets group g's rows"));
    return d;
  }();
  return b;
}

/// Keys that moved from `train:` (or the top level) to `execution:`.
const std::vector<std::string> kExecutionKeys = {"prefetch", "threads", "autocast", "device"};

struct RawRef {
  std::string text;
  std::string port;  // explicit port name from a map form, else ""
  Location where;
};

struct Builder {
  const Registry& registry;
  const std::string& file;
  Diagnostics diags;
  Graph g;
  std::map<std::string, std::vector<RawRef>> raw_inputs;  // by node id
  std::map<std::string, Location> in_where;
  bool duplicates = false;  // ids are ambiguous: the graph is not ordered
  bool misplaced = false;   // a node in the wrong section: its ports are not checked
  bool propagated = false;  // ports and outputs checked: the step plane can be analysed
  std::optional<std::string> batch_id_;

  std::string owner(const NodeDecl& n) const { return "node '" + n.id + "' (" + n.type + ")"; }

  std::vector<std::string> all_node_ids() const {
    std::vector<std::string> ids;
    for (const auto& n : g.data) ids.push_back(n.id);
    for (const auto& n : g.step) ids.push_back(n.id);
    return ids;
  }

  void read_refs(const NodeDecl& n, const Doc& in) {
    auto& refs = raw_inputs[n.id];
    in_where[n.id] = in.where();
    auto one = [&](const Doc& d, const std::string& port) {
      if (d.is_scalar() && !d.text().empty()) refs.push_back({d.text(), port, d.where()});
      else diags.error(d.where(), owner(n) + ": `in` entries are node ids or `node.key`, got a " + d.kind_name());
    };
    if (in.is_scalar()) one(in, "");
    else if (in.is_sequence())
      for (const auto& i : in.items()) one(i, "");
    else if (in.is_map())
      for (const auto& e : in.entries()) {
        if (e.value.is_sequence())
          for (const auto& i : e.value.items()) one(i, e.key);
        else one(e.value, e.key);
      }
    else diags.error(in.where(), owner(n) + ": `in` is empty");
  }

  NodeDecl parse_node(const Doc& item, NodeDecl::Section section, const std::string& given_id) {
    NodeDecl n;
    n.section = section;
    n.where = item.where();
    if (!item.is_map()) {
      diags.error(item.where(), std::string("a node is a map with at least `type`, got a ") + item.kind_name());
      return n;
    }
    if (section == NodeDecl::Section::modules) {
      n.id = given_id;
    } else if (const Doc* id = item.find("id"); id && id->is_scalar()) {
      n.id = id->text();
      if (!is_valid_id(n.id))
        diags.error(id->where(), "node id '" + n.id + "' must start with a letter or '_' and hold only letters, digits, '_' and '-'");
    } else {
      diags.error(item.where(), "node without `id` (every node under `data:` and `step:` needs a unique id)");
    }
    const Doc* type = item.find("type");
    if (!type || !type->is_scalar()) {
      diags.error(item.where(), "node '" + n.id + "' has no `type`");
      return n;
    }
    n.type = type->text();
    n.spec = registry.find(n.type);
    if (!n.spec) {
      diags.error(type->where(), "node '" + n.id + "': unknown node type '" + n.type + "'" +
                                     did_you_mean(n.type, registry.types()) + "; `umrflow nodes` lists them all");
      return n;
    }
    const NodeKind kind = n.spec->kind;
    const bool data_kind = kind == NodeKind::source || kind == NodeKind::sample || kind == NodeKind::batch;
    const bool ok = section == NodeDecl::Section::modules ? kind == NodeKind::module
                    : section == NodeDecl::Section::data  ? data_kind
                                                          : (kind == NodeKind::step || kind == NodeKind::call);
    if (!ok) {
      const char* home = kind == NodeKind::module ? "`modules:`" : data_kind ? "`data:`" : "`step:`";
      const bool engine_kind = kind == NodeKind::batch || kind == NodeKind::call;
      diags.error(type->where(), "node '" + n.id + "': '" + n.type + "'" +
                                     (engine_kind ? std::string() : std::string(" is a ") + node_kind_name(kind) + " node and") +
                                     " belongs under " + home);
      misplaced = true;
    }
    std::vector<std::string> reserved = {"type"};
    if (section == NodeDecl::Section::modules) {
      reserved.insert(reserved.end(), {"frozen", "init"});
      if (const Doc* f = item.find("frozen")) {
        if (f->is_scalar() && (f->text() == "true" || f->text() == "false")) n.frozen = f->text() == "true";
        else diags.error(f->where(), "module '" + n.id + "': `frozen` is true or false");
      }
      if (const Doc* init = item.find("init")) parse_init(n, *init);
    } else {
      reserved.insert(reserved.end(), {"id", "in"});
    }
    n.params = parse_params(item, n.spec->params, reserved, owner(n), diags);
    n.ports = &n.spec->inputs;
    if (kind == NodeKind::call) resolve_call(n);
    if (section != NodeDecl::Section::modules) {
      if (const Doc* in = item.find("in")) read_refs(n, *in);
      else in_where[n.id] = item.where();
    }
    return n;
  }

  void parse_init(NodeDecl& n, const Doc& init) {
    static const std::vector<ParamSpec> specs = {
        param::text("from", std::nullopt, "checkpoint to read the module's weights from"),
        param::text("prefix", "", "module id inside that checkpoint (default: this module's id)"),
        param::texts("include", std::vector<std::string>{"*"}, "glob patterns of parameter names to take"),
        param::texts("exclude", std::vector<std::string>{}, "glob patterns of parameter names to leave"),
    };
    if (!init.is_map()) {
      diags.error(init.where(), "module '" + n.id + "': `init` is a map {from: CKPT, include: [...], exclude: [...]}");
      return;
    }
    Params p = parse_params(init, specs, {}, "module '" + n.id + "' init", diags);
    if (!p.has("from")) return;
    n.has_init = true;
    // Like data paths, checkpoints are relative to the working directory (runs/ lives there).
    n.init.from = fs::path(p.get_text("from")).lexically_normal().string();
    n.init.prefix = !p.has("prefix") || p.get_text("prefix").empty() ? n.id : p.get_text("prefix");
    // A parameter given with a wrong type has its diagnostic already; leave the default then.
    if (p.has("include")) n.init.include = p.get_texts("include");
    if (p.has("exclude")) n.init.exclude = p.get_texts("exclude");
  }

  void parse_sections(const Doc& root) {
    if (const Doc* mods = root.find("modules")) {
      if (!mods->is_map()) diags.error(mods->where(), "`modules:` is a map from module id to {type: ..., parameters}");
      else
        for (const auto& e : mods->entries()) {
          if (!is_valid_id(e.key)) diags.error(e.key_where, "module id '" + e.key + "' is not a valid id");
          g.modules.push_back(parse_node(e.value, NodeDecl::Section::modules, e.key));
          g.modules.back().where = e.key_where;
        }
    }
    for (auto [key, section] : {std::pair{"data", NodeDecl::Section::data}, std::pair{"step", NodeDecl::Section::step}}) {
      const Doc* list = root.find(key);
      if (!list) {
        if (std::string(key) == "data") diags.error(root.where(), "the graph has no `data:` section (a source, transforms, a batch node)");
        continue;
      }
      if (!list->is_sequence()) {
        diags.error(list->where(), std::string("`") + key + ":` is a list of nodes");
        continue;
      }
      for (const auto& item : list->items()) {
        NodeDecl n = parse_node(item, section, "");
        (section == NodeDecl::Section::data ? g.data : g.step).push_back(std::move(n));
      }
    }
    std::map<std::string, Location> seen;
    for (const auto* list : {&g.data, &g.step})
      for (const auto& n : *list) {
        if (n.id.empty()) continue;
        auto [it, fresh] = seen.emplace(n.id, n.where);
        if (!fresh) {
          diags.error(n.where, "duplicate node id '" + n.id + "' (first defined at " + it->second.str() + ")");
          duplicates = true;
        }
      }
  }

  /// The first data or step node with this id. An index keyed on the lists'
  /// buffers, rebuilt when a list is reordered, keeps lookups O(log n).
  NodeDecl* node(const std::string& id) {
    const std::array<const void*, 4> stamp = {g.data.data(), reinterpret_cast<const void*>(g.data.size()), g.step.data(),
                                              reinterpret_cast<const void*>(g.step.size())};
    if (stamp != index_stamp_) {
      index_.clear();
      for (auto* list : {&g.data, &g.step})
        for (auto& n : *list) index_.emplace(n.id, &n);
      index_stamp_ = stamp;
    }
    auto it = index_.find(id);
    return it == index_.end() ? nullptr : it->second;
  }
  std::map<std::string, NodeDecl*> index_;
  std::array<const void*, 4> index_stamp_{};

  const NodeDecl* module(const std::string& id) const {
    for (const auto& m : g.modules)
      if (m.id == id) return &m;
    return nullptr;
  }

  /// A `call`: the module and its `then` chain by id, and the called
  /// module's ports as the node's own (modules are parsed before the planes).
  void resolve_call(NodeDecl& n) const {
    n.module = n.params.has("module") ? n.params.get_text("module") : "";
    if (n.params.has("then")) n.then = n.params.get_texts("then");
    const NodeDecl* m = module(n.module);
    n.ports = m && m->spec ? &m->spec->inputs : nullptr;
  }

  const std::vector<PortSpec>* ports_of(const NodeDecl& n) const { return n.ports; }

  void bind_inputs(NodeDecl& n) {
    const auto* ports = ports_of(n);
    if (!ports) return;
    auto& refs = raw_inputs[n.id];
    const Location in_loc = in_where.count(n.id) ? in_where[n.id] : n.where;
    std::map<std::string, int> bound;
    std::size_t positional = 0;
    for (auto& r : refs) {
      std::string port = r.port;
      if (port.empty()) {
        if (positional < ports->size()) port = (*ports)[positional++].name;
        else if (!ports->empty() && ports->back().variadic) port = ports->back().name;
        else {
          diags.error(r.where, owner(n) + ": too many inputs; it has " + std::to_string(ports->size()) +
                                   " port(s)" + port_list(*ports));
          continue;
        }
      } else if (std::none_of(ports->begin(), ports->end(), [&](const PortSpec& p) { return p.name == port; })) {
        std::vector<std::string> names;
        for (const auto& p : *ports) names.push_back(p.name);
        diags.error(r.where, owner(n) + ": no input port '" + port + "'" + did_you_mean(port, names) + port_list(*ports));
        continue;
      }
      InputRef ref{r.text, "", port, r.where};
      auto dot = r.text.find('.');
      if (dot != std::string::npos) {
        ref.node = r.text.substr(0, dot);
        ref.key = r.text.substr(dot + 1);
      }
      bound[port]++;
      n.inputs.push_back(ref);
    }
    for (const auto& p : *ports) {
      if (!p.optional && !bound.count(p.name))
        diags.error(in_loc, owner(n) + ": missing input for port '" + p.name + "'" +
                                (p.needs.empty() ? "" : " (needs key '" + p.needs.front().key + "')") +
                                "; connect it with `in:`");
      if (!p.variadic && bound[p.name] > 1)
        diags.error(in_loc, owner(n) + ": port '" + p.name + "' takes one input, got " + std::to_string(bound[p.name]));
    }
    // Producers must exist and sit on a plane this node may read.
    const std::string batch_id = batch_node_id();
    for (const auto& ref : n.inputs) {
      const NodeDecl* producer = node(ref.node);
      if (!producer) {
        diags.error(ref.where, owner(n) + ": input '" + ref.str() + "' names no node" + did_you_mean(ref.node, all_node_ids()));
        continue;
      }
      if (n.section == NodeDecl::Section::data && producer->section == NodeDecl::Section::step)
        diags.error(ref.where, owner(n) + ": a data-plane node cannot read the step node '" + producer->id + "'");
      if (n.section == NodeDecl::Section::step && producer->section == NodeDecl::Section::data && producer->id != batch_id)
        diags.error(ref.where, owner(n) + ": step nodes read the data plane only through its batch node" +
                                   (batch_id.empty() ? std::string() : " '" + batch_id + "'") + ", not '" + producer->id + "'");
      if (n.section == NodeDecl::Section::data && !ref.key.empty())
        diags.error(ref.where, owner(n) + ": data-plane inputs take whole samples; write '" + ref.node + "'");
    }
  }

  static std::string port_list(const std::vector<PortSpec>& ports) {
    std::string s = " (ports: ";
    for (std::size_t i = 0; i < ports.size(); ++i) s += (i ? ", " : "") + ports[i].name + (ports[i].variadic ? "..." : "");
    return ports.empty() ? " (it takes no inputs)" : s + ")";
  }

  /// The first batch node's id ("" when none); computed once, as the node
  /// types do not change after parsing.
  std::string batch_node_id() {
    if (batch_id_) return *batch_id_;
    batch_id_ = "";
    for (const auto& n : g.data)
      if (n.is(NodeKind::batch)) {
        batch_id_ = n.id;
        break;
      }
    return *batch_id_;
  }

  /// Reports every cycle once, as the chain of ids around it.
  /// Depth-first search with an explicit stack (graphs of any length); each
  /// cycle is reported once, with its nodes in reading order.
  bool check_cycles() {
    std::map<std::string, int> state;  // 0 new, 1 on stack, 2 done
    std::vector<std::pair<NodeDecl*, std::size_t>> stack;  // node, next input to follow
    bool found = false;
    for (auto* list : {&g.data, &g.step})
      for (auto& root : *list) {
        if (state[root.id] != 0) continue;
        state[root.id] = 1;
        stack.emplace_back(&root, 0);
        while (!stack.empty()) {
          auto& [n, next] = stack.back();
          if (next == n->inputs.size()) {
            state[n->id] = 2;
            stack.pop_back();
            continue;
          }
          const InputRef& ref = n->inputs[next++];
          NodeDecl* p = node(ref.node);
          if (!p) continue;
          if (state[p->id] == 1) {
            auto it = std::find_if(stack.begin(), stack.end(), [&](const auto& e) { return e.first->id == p->id; });
            std::string chain;
            for (; it != stack.end(); ++it) chain += it->first->id + " -> ";
            diags.error(ref.where, "cycle: " + chain + p->id + " (each node reads the one after it)");
            found = true;
          } else if (state[p->id] == 0) {
            state[p->id] = 1;
            stack.emplace_back(p, 0);
          }
        }
      }
    return found;
  }

  void order_data_plane() {
    std::vector<NodeDecl*> sources, batches;
    for (auto& n : g.data) {
      if (n.spec && n.spec->kind == NodeKind::source) sources.push_back(&n);
      if (n.is(NodeKind::batch)) batches.push_back(&n);
    }
    if (sources.size() != 1) {
      diags.error(sources.empty() ? (g.data.empty() ? g.resolved.where() : g.data.front().where) : sources[1]->where,
                  "the data plane needs exactly one source node, found " + std::to_string(sources.size()));
      return;
    }
    if (batches.size() != 1) {
      diags.error(batches.empty() ? g.data.back().where : batches[1]->where,
                  "the data plane needs exactly one `batch` node at its end, found " + std::to_string(batches.size()));
      return;
    }
    std::map<std::string, std::vector<NodeDecl*>> consumers;
    for (auto& n : g.data)
      for (const auto& ref : n.inputs) consumers[ref.node].push_back(&n);
    std::vector<NodeDecl> chain;
    std::set<std::string> placed;
    NodeDecl* cur = sources[0];
    while (cur) {
      if (placed.count(cur->id)) {
        diags.error(cur->where, "the data plane loops back to '" + cur->id + "'");
        return;
      }
      chain.push_back(*cur);
      placed.insert(cur->id);
      auto& next = consumers[cur->id];
      if (next.size() > 1) {
        diags.error(next[1]->where, "the data plane is a chain: '" + next[0]->id + "' and '" + next[1]->id +
                                        "' both read '" + cur->id + "'");
        return;
      }
      if (cur->is(NodeKind::batch)) {
        if (!next.empty()) diags.error(next[0]->where, "nothing on the data plane may follow the batch node '" + cur->id + "'");
        break;
      }
      cur = next.empty() ? nullptr : next[0];
    }
    if (!chain.back().is(NodeKind::batch)) {
      diags.error(chain.back().where, "the data plane chain from '" + chain.front().id + "' ends at '" + chain.back().id +
                                          "' without reaching the batch node '" + batches[0]->id + "'");
      return;
    }
    for (auto& n : g.data)
      if (!placed.count(n.id)) diags.error(n.where, "data node '" + n.id + "' is not on the chain from the source to the batch node");
    g.data = std::move(chain);
  }

  /// Topological order of the step nodes (Kahn's algorithm), ties broken by
  /// the order in the file; runs only on graphs without cycles.
  void order_step_plane() {
    std::map<std::string, std::size_t> position;
    for (std::size_t i = 0; i < g.step.size(); ++i) position.emplace(g.step[i].id, i);
    std::vector<std::size_t> waiting(g.step.size(), 0);
    std::vector<std::vector<std::size_t>> readers(g.step.size());
    for (std::size_t i = 0; i < g.step.size(); ++i)
      for (const auto& r : g.step[i].inputs)
        if (auto it = position.find(r.node); it != position.end() && it->second != i) {
          ++waiting[i];
          readers[it->second].push_back(i);
        }
    std::set<std::size_t> ready;
    for (std::size_t i = 0; i < g.step.size(); ++i)
      if (waiting[i] == 0) ready.insert(i);
    std::vector<NodeDecl> ordered;
    while (!ready.empty()) {
      const std::size_t i = *ready.begin();
      ready.erase(ready.begin());
      ordered.push_back(g.step[i]);
      for (std::size_t j : readers[i])
        if (--waiting[j] == 0) ready.insert(j);
    }
    if (ordered.size() == g.step.size()) g.step = std::move(ordered);
  }

  std::map<std::string, int> outputs_of(const NodeDecl& n) {
    std::map<std::string, int> out;
    const NodeSpec* spec = n.spec;
    const Params* params = &n.params;
    if (n.is(NodeKind::call)) {
      const NodeDecl* m = module(n.then.empty() ? n.module : n.then.back());
      if (!m || !m->spec) return out;
      spec = m->spec;
      params = &m->params;
    }
    if (!spec) return out;
    for (const auto& k : spec->outputs_given(*params)) out[k.key] = k.rank;
    return out;
  }

  static std::string rank_text(int r) { return r < 0 ? "any rank" : "rank " + std::to_string(r); }

  void check_edge(const NodeDecl& n, const InputRef& ref, const PortSpec& port) {
    const NodeDecl* p = node(ref.node);
    if (!p) return;
    const auto& have = p->provides;
    auto provided_list = [&]() {
      std::string s;
      for (const auto& [k, r] : have) s += (s.empty() ? "" : ", ") + k + (r >= 0 ? "[" + std::to_string(r) + "]" : "");
      return s.empty() ? std::string("nothing") : s;
    };
    auto check = [&](const std::string& key, const KeySpec* need) {
      auto it = have.find(key);
      if (it == have.end()) {
        std::vector<std::string> keys;
        for (const auto& [k, r] : have) keys.push_back(k);
        diags.error(ref.where, owner(n) + ": port '" + port.name + "' needs key '" + key + "', but '" + p->id +
                                   "' does not provide it" + did_you_mean(key, keys) + " (it provides: " + provided_list() + ")");
        return;
      }
      if (need && need->rank >= 0 && it->second >= 0 && need->rank != it->second)
        diags.error(ref.where, owner(n) + ": port '" + port.name + "' needs '" + need->key + "' of " +
                                   rank_text(need->rank) + ", but '" + p->id + "' provides '" + key + "' with " +
                                   rank_text(it->second));
    };
    if (!ref.key.empty()) check(ref.key, port.needs.empty() ? nullptr : &port.needs.front());
    else
      for (const auto& need : port.needs) check(need.key, &need);
  }

  void propagate_and_check() {
    for (std::size_t i = 0; i < g.data.size(); ++i) {
      NodeDecl& n = g.data[i];
      if (i == 0) {
        n.provides = outputs_of(n);
        continue;
      }
      const NodeDecl& prev = g.data[i - 1];
      n.provides = prev.provides;
      if (n.is(NodeKind::batch)) {
        for (auto& [k, r] : n.provides)
          if (r >= 0) r += 1;
      } else {
        for (const auto& [k, r] : outputs_of(n)) n.provides[k] = r;
      }
      if (n.spec && !n.inputs.empty() && !n.spec->inputs.empty()) check_edge(n, n.inputs.front(), n.spec->inputs.front());
    }
    for (auto& n : g.step) {
      n.provides = outputs_of(n);
      const auto* ports = ports_of(n);
      if (!ports) continue;
      for (const auto& ref : n.inputs) {
        auto port = std::find_if(ports->begin(), ports->end(), [&](const PortSpec& p) { return p.name == ref.port; });
        if (port != ports->end()) check_edge(n, ref, *port);
      }
    }
  }

  void check_modules() {
    std::vector<std::string> ids;
    for (const auto& m : g.modules) ids.push_back(m.id);
    for (const auto& m : g.modules)
      if (m.frozen && !m.has_init)
        diags.error(m.where, "module '" + m.id + "' is frozen but has no initial weights; add `init: {from: CHECKPOINT}` "
                             "or set `frozen: false`");
    for (const auto& n : g.step)
      if (n.is(NodeKind::call) && !n.module.empty() && !module(n.module))
        diags.error(n.params.where("module"), owner(n) + ": calls module '" + n.module +
                                                  "', which is not declared under `modules:`" + did_you_mean(n.module, ids));
    for (const auto& n : g.step)
      if (n.is(NodeKind::call))
        for (const auto& id : n.then)
          if (!module(id))
            diags.error(n.params.where("then"), owner(n) + ": `then` names module '" + id + "', which is not declared under `modules:`" +
                                                    did_you_mean(id, ids));
  }

  /// A settings map: its keys parsed against `bindings`, values (or the
  /// declared defaults) written into `target`. `moved` keys get a hint.
  template <class T>
  Params parse_settings(const Doc* map, const std::string& name, const ParamBindings<T>& bindings, T& target,
                        const std::vector<std::string>& reserved = {}) {
    const Doc empty = Doc::map(map ? map->where() : Location{file, 1, 1});
    if (map && !map->is_map()) {
      diags.error(map->where(), "`" + name + ":` is a map (see docs/graph-yaml.md)");
      map = nullptr;
    }
    Params p = parse_params(map ? *map : empty, bindings.specs(), reserved, name, diags);
    bindings.apply(p, target);
    return p;
  }

  static Location key_location(const Doc& map, const std::string& key) {
    for (const auto& e : map.entries())
      if (e.key == key) return e.key_where;
    return map.where();
  }

  void parse_execution(const Doc& root) {
    parse_settings(root.find("execution"), "execution", execution_bindings(), g.execution);
    // The keys' old homes: a clear pointer instead of "unknown key".
    const Doc* t = root.find("train");
    for (const auto& key : kExecutionKeys) {
      if (const Doc* old = root.find(key); old && key == "device")
        diags.error(key_location(root, key), "`device` moved into `execution:` (write `execution: {device: " +
                                               (old->is_scalar() ? old->text() : std::string("...")) + "}`)");
      if (const Doc* old = t && t->is_map() ? t->find(key) : nullptr; old && key != "device")
        diags.error(key_location(*t, key), "train." + key + " moved to execution." + key + " (valid in every graph, training or not)");
    }
  }

  void parse_train(const Doc& root) {
    const Doc* t = root.find("train");
    if (!t) return;
    if (!t->is_map()) {
      diags.error(t->where(), "`train:` is a map of training settings (see docs/graph-yaml.md)");
      return;
    }
    g.train.enabled = true;
    std::vector<std::string> reserved = {"optimizer", "checkpoint", "schedule", "validate", "accumulate"};
    reserved.insert(reserved.end(), kExecutionKeys.begin(), kExecutionKeys.end());
    Params p = parse_settings(t, "train", train_bindings(), g.train, reserved);
    parse_settings(t->find("optimizer"), "train.optimizer", optimizer_bindings(), g.train);
    parse_settings(t->find("checkpoint"), "train.checkpoint", checkpoint_bindings(), g.train);
    Params sp = parse_settings(t->find("schedule"), "train.schedule", schedule_bindings(), g.train);
    if (g.train.schedule == "warmup_cosine" && g.train.warmup_epochs >= g.train.epochs)
      diags.error(sp.where("type"), "train.schedule: warmup_epochs (" + std::to_string(g.train.warmup_epochs) +
                                        ") must be below train.epochs (" + std::to_string(g.train.epochs) + ")");
    if (const Doc* v = t->find("validate")) {
      Params vp = parse_settings(v, "train.validate", validate_bindings(), g.train);
      if (vp.has("graph")) {
        const fs::path base = base_folder(vp.where("graph"));
        g.train.validate_graph = (base / g.train.validate_graph).lexically_normal().string();
        if (!fs::exists(g.train.validate_graph))
          diags.error(vp.where("graph"), "train.validate.graph '" + g.train.validate_graph + "' does not exist");
      }
    }
    const Location where = p.has("objective") ? p.where("objective") : t->where();
    if (g.train.objective.empty()) {
      diags.error(t->where(), "train: missing `objective` (the step node whose `loss` is minimised)");
    } else if (const NodeDecl* obj = node(g.train.objective); !obj || obj->section != NodeDecl::Section::step) {
      std::vector<std::string> ids;
      for (const auto& n : g.step) ids.push_back(n.id);
      diags.error(where, "train.objective '" + g.train.objective + "' is not a step node" + did_you_mean(g.train.objective, ids));
    } else if (auto it = obj->provides.find("loss"); it == obj->provides.end() || (it->second != 0 && it->second != -1)) {
      diags.error(where, "train.objective '" + g.train.objective + "' provides no scalar `loss`");
    } else if (const Doc* a = t->find("accumulate")) {
      parse_accumulate(*a);
    }
  }

  /// train.accumulate: the refs exist, and splitting the batch into groups of
  /// rows gives the same loss and gradients (RowRule of every dependent node).
  void parse_accumulate(const Doc& a) {
    Params p = parse_settings(&a, "train.accumulate", accumulate_bindings(), g.train);
    if (!a.is_map() || !propagated) return;  // the step plane's errors come first
    const std::string& batch_id = g.batch().id;
    auto producer = [&](const std::string& field, const std::string& ref) -> std::optional<std::pair<std::string, std::string>> {
      const auto dot = ref.find('.');
      const NodeDecl* n = dot == std::string::npos ? nullptr : node(ref.substr(0, dot));
      const std::string key = dot == std::string::npos ? "" : ref.substr(dot + 1);
      if (!n || (n->section != NodeDecl::Section::step && n->id != batch_id) || !n->provides.count(key)) {
        diags.error(p.where(field), "train.accumulate." + field + ": '" + ref + "' is not a NODE.KEY output of a step node or of `" +
                                        batch_id + "`");
        return std::nullopt;
      }
      return std::make_pair(n->id, key);
    };
    std::set<std::pair<std::string, std::string>> split;  // (node, key) refs whose rows are split
    const auto groups = producer("groups", g.train.accumulate_groups);
    if (!groups) return;
    split.insert(*groups);
    for (const auto& ref : g.train.accumulate_slice)
      if (auto r = producer("slice", ref)) split.insert(*r);
    // Dependent: reads a split tensor (or the whole packet holding one), or a dependent node.
    std::set<std::string> dependent;
    for (const auto& n : g.step) {
      bool dep = false, shared = false, reads_groups = false;
      for (const auto& r : n.inputs) {
        bool d = dependent.count(r.node) > 0;
        for (const auto& [node_id, key] : split)
          if (r.node == node_id && (r.key.empty() || r.key == key)) d = true;
        if (r.node == groups->first && (r.key.empty() || r.key == groups->second)) reads_groups = true;
        dep = dep || d;
        shared = shared || !d;
      }
      if (!dep) continue;
      dependent.insert(n.id);
      g.train.accumulate_dependent.push_back(n.id);
      const bool objective = n.id == g.train.objective;
      if (n.is(NodeKind::call) && !reads_groups) {
        diags.error(n.where, "node '" + n.id + "' runs module '" + n.module + "' on split rows but is not given `" +
                                 g.train.accumulate_groups + "`: with train.accumulate its BatchNorm would see each group alone, "
                                 "unlike the same call without it (bind `groups:`, or remove train.accumulate)");
      } else if (!n.is(NodeKind::call) && n.spec && n.spec->rows == RowRule::coupled) {
        diags.error(n.where, "node '" + n.id + "' (" + n.type + ") couples the rows of its inputs, so train.accumulate cannot split it "
                                 "into groups; compute it from unsplit tensors, or drop train.accumulate");
      } else if (!n.is(NodeKind::call) && n.spec && n.spec->rows == RowRule::linear && shared && !objective) {
        diags.error(n.where, "node '" + n.id + "' adds split and unsplit terms but is not train.objective: with train.accumulate the "
                                 "unsplit terms would lose their gradient; add them in the objective");
      } else if (objective && shared && n.spec && n.spec->rows != RowRule::linear) {
        diags.error(n.where, "train.objective '" + n.id + "' mixes split and unsplit inputs; with train.accumulate it must be a "
                                 "weighted sum of losses (loss.sum)");
      }
    }
    if (!dependent.count(g.train.objective))
      diags.error(a.where(), "train.accumulate: the objective '" + g.train.objective + "' does not depend on " +
                                 g.train.accumulate_groups + (g.train.accumulate_slice.empty() ? "" : " or the sliced tensors") +
                                 ", so there is nothing to split");
  }
};

}  // namespace

std::vector<std::pair<std::string, std::vector<ParamSpec>>> settings_sections() {
  return {{"execution", execution_bindings().specs()},     {"train", train_bindings().specs()},
          {"train.optimizer", optimizer_bindings().specs()}, {"train.checkpoint", checkpoint_bindings().specs()},
          {"train.schedule", schedule_bindings().specs()},   {"train.validate", validate_bindings().specs()},
          {"train.accumulate", accumulate_bindings().specs()}};
}

std::vector<PluginRef> plugin_refs(const Doc& doc) {
  std::vector<PluginRef> out;
  const Doc* p = doc.is_map() ? doc.find("plugins") : nullptr;
  if (!p) return out;
  Diagnostics diags;
  std::vector<const Doc*> items;
  if (p->is_scalar()) items.push_back(p);
  else if (p->is_sequence())
    for (const auto& i : p->items()) items.push_back(&i);
  else diags.error(p->where(), "`plugins:` is a list of shared-library paths");
  for (const Doc* i : items) {
    if (!i->is_scalar()) {
      diags.error(i->where(), "`plugins:` entries are paths");
      continue;
    }
    fs::path path = i->text();
    // Relative paths are relative to the file that named them (to the working directory for --set).
    if (path.is_relative()) path = fs::path(base_folder(i->where())) / path;
    out.push_back({path.lexically_normal().string(), i->where()});
  }
  diags.throw_if_any();
  return out;
}

std::vector<std::string> plugin_list(const Doc& doc, const std::string& graph_file) {
  (void)graph_file;
  std::vector<std::string> out;
  for (const auto& r : plugin_refs(doc)) out.push_back(r.path);
  return out;
}

bool is_valid_id(const std::string& id) {
  static const std::regex pattern("[A-Za-z_][A-Za-z0-9_-]*");
  return std::regex_match(id, pattern);
}

Graph build_graph(const Doc& doc, const std::string& graph_file, const Registry& registry) {
  Builder b{registry, graph_file, {}, {}, {}, {}};
  b.g.file = graph_file;
  b.g.resolved = doc;
  if (!doc.is_map()) {
    b.diags.error(doc.where().line ? doc.where() : Location{graph_file, 1, 1},
                  "a graph file is a YAML map with `umrflow: 1`, `data:` and `step:` (see docs/graph-yaml.md)");
    b.diags.throw_if_any();
  }
  // Top-level keys.
  for (const auto& e : doc.entries())
    if (std::find(kTopKeys.begin(), kTopKeys.end(), e.key) == kTopKeys.end() && e.key != "device")  // device: see parse_execution
      b.diags.error(e.key_where, "unknown top-level key '" + e.key + "'" + did_you_mean(e.key, kTopKeys));
  Doc scalars = Doc::map(doc.where());
  for (const auto& e : doc.entries())
    if (e.key == "umrflow" || e.key == "name" || e.key == "seed") scalars.set(e.key, e.value, e.key_where);
  Params top = parse_params(scalars, top_specs(), {}, "graph", b.diags);
  b.g.name = top.has("name") ? top.get_text("name") : "";
  if (b.g.name.empty()) b.g.name = fs::path(graph_file).stem().string();
  if (top.has("seed")) b.g.seed = static_cast<std::uint64_t>(top.get_int("seed"));
  try {
    b.g.plugins = plugin_list(doc, graph_file);
  } catch (const GraphError& e) {
    for (const auto& d : e.diagnostics().items()) b.diags.error(d.where, d.message);
  }

  b.parse_sections(doc);
  for (auto* list : {&b.g.data, &b.g.step})
    for (auto& n : *list) b.bind_inputs(n);
  b.check_modules();
  const bool cyclic = b.check_cycles();
  if (!cyclic && !b.duplicates && !b.misplaced && !b.g.data.empty()) {
    b.order_data_plane();
    b.order_step_plane();
    b.propagate_and_check();
    b.propagated = true;
  }
  b.parse_execution(doc);
  b.parse_train(doc);
  if (!b.g.data.empty() && b.g.data.back().is(NodeKind::batch) && b.g.data.back().params.has("size")) {
    const auto size = b.g.data.back().params.get_int("size");
    if (b.g.execution.prefetch < size) {
      const Doc* e = doc.find("execution");
      b.diags.error(e && e->is_map() ? Builder::key_location(*e, "prefetch") : b.g.data.back().where, "execution.prefetch (" + std::to_string(b.g.execution.prefetch) +
                                                                ") must be at least the batch size (" + std::to_string(size) + ")");
    }
  }
  b.diags.throw_if_any();
  return std::move(b.g);
}

std::string graph_to_dot(const Graph& g) {
  auto q = [](const std::string& s) {
    std::string out = "\"";
    for (char c : s) out += (c == '"' ? std::string("\\\"") : std::string(1, c));
    return out + "\"";
  };
  std::string out = "digraph " + q(g.name) + " {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n";
  auto cluster = [&](const std::string& name, const std::string& label, const std::vector<NodeDecl>& nodes) {
    out += "  subgraph cluster_" + name + " {\n    label=" + q(label) + ";\n";
    for (const auto& n : nodes) {
      std::string text = n.id + "\\n" + n.type;
      if (n.is(NodeKind::call)) text += " " + n.module;
      out += "    " + q(n.id) + " [label=" + q(text) + "];\n";
    }
    out += "  }\n";
  };
  cluster("data", "data plane (parallel, CPU)", g.data);
  cluster("step", "step (serial, " + g.execution.device + ")", g.step);
  for (const auto& m : g.modules)
    out += "  " + q("module:" + m.id) + " [shape=ellipse, label=" + q(m.id + "\\n" + m.type + (m.frozen ? "\\nfrozen" : "")) + "];\n";
  for (const auto* list : {&g.data, &g.step})
    for (const auto& n : *list) {
      for (const auto& r : n.inputs)
        out += "  " + q(r.node) + " -> " + q(n.id) + (r.key.empty() ? "" : " [label=" + q(r.key) + "]") + ";\n";
      if (n.is(NodeKind::call) && !n.module.empty())
        out += "  " + q("module:" + n.module) + " -> " + q(n.id) + " [style=dashed];\n";
    }
  return out + "}\n";
}

}  // namespace umrflow
