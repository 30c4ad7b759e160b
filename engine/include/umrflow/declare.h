// umrflow/declare.h: a node type declared once, on its class.
//
// A node class has a static declare() that names the type, its kind, ports and
// parameters, each parameter bound to the member that receives its value
// (bind.h). From that one declaration the engine builds the NodeSpec (parsing,
// validation, `umrflow nodes`, docs/nodes.md) and the factory: it
// default-constructs the node, writes every parameter into its member, then
// calls the node's `void setup()` when it has one (to derive state or build a
// torch module from the values). Constructors read no parameter by name.
//
//   class GaussianNoise final : public umrflow::SampleNode {
//    public:
//     static void declare(umrflow::Declaration<GaussianNoise>& d) {
//       d.type("tensor.gaussian_noise", umrflow::NodeKind::sample, "Adds N(0, std^2) noise to `image`.");
//       d.input({"in", {{"image", -1, "any shape"}}, "the sample"});
//       d.param(&GaussianNoise::std_, umrflow::param::number("std", 0.1, "standard deviation").min(0));
//     }
//     void apply(umrflow::Packet& s, umrflow::Context& ctx) override { ... }
//    private:
//     double std_ = 0;
//   };
//
//   umrflow::add_nodes<GaussianNoise, OtherNode>(registry);  // a family's one list
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "umrflow/bind.h"
#include "umrflow/node_spec.h"
#include "umrflow/registry.h"

namespace umrflow {

namespace detail {
template <class T, class = void>
struct HasSetup : std::false_type {};
template <class T>
struct HasSetup<T, std::void_t<decltype(std::declval<T&>().setup())>> : std::true_type {};
}  // namespace detail

template <class T>
class Declaration {
 public:
  /// The registered name, the kind of node and the one line `umrflow nodes` shows.
  void type(std::string name, NodeKind kind, std::string summary) {
    spec_.type = std::move(name);
    spec_.kind = kind;
    spec_.summary = std::move(summary);
  }
  void input(PortSpec port) { spec_.inputs.push_back(std::move(port)); }
  void output(KeySpec key) { spec_.outputs.push_back(std::move(key)); }
  /// Outputs that depend on the parameters; replaces output() for validation.
  void outputs_for(std::function<std::vector<KeySpec>(const Params&)> f) { spec_.outputs_for = std::move(f); }
  /// A figure finish() returns (StepNode::finish), for validation metrics and docs.
  void summary_figure(KeySpec figure) { spec_.figures.push_back(std::move(figure)); }
  /// How the scalar outputs relate to the input rows (RowRule; default coupled).
  void rows(RowRule rule) { spec_.rows = rule; }
  /// Whether a multi-process pass may share its samples (Sharding; default whole).
  void sharding(Sharding rule) { spec_.sharding = rule; }
  void sharding_for(std::function<Sharding(const Params&)> f) { spec_.sharding_for = std::move(f); }

  /// A parameter and the member its value lands in.
  template <class M>
  void param(M T::*member, ParamSpec spec) {
    bindings_->bind(member, std::move(spec));
  }
  /// A parameter that lands in a field of an options struct member.
  template <class O, class M>
  void param(O T::*outer, M O::*member, ParamSpec spec) {
    bindings_->bind(outer, member, std::move(spec));
  }

  /// The finished spec, with the factory described above.
  NodeSpec build() && {
    spec_.params = bindings_->specs();
    spec_.create = [bindings = bindings_](const Params& p) -> std::unique_ptr<Node> {
      auto node = std::make_unique<T>();
      bindings->apply(p, *node);
      if constexpr (detail::HasSetup<T>::value) node->setup();
      return node;
    };
    return std::move(spec_);
  }

 private:
  NodeSpec spec_;
  std::shared_ptr<ParamBindings<T>> bindings_ = std::make_shared<ParamBindings<T>>();
};

/// The NodeSpec of a class with a static declare(Declaration<T>&).
template <class T>
NodeSpec node_spec_of() {
  Declaration<T> d;
  T::declare(d);
  return std::move(d).build();
}

/// Registers node classes: a family's one list of the types it provides.
template <class... T>
void add_nodes(Registry& registry) {
  (registry.add(node_spec_of<T>()), ...);
}

}  // namespace umrflow
