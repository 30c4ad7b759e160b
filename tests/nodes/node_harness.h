// node_harness.h: builds one node from YAML parameters and calls it, the way
// the scheduler would, so node tests need no graph.
#pragma once

#include <gtest/gtest.h>

#include "test_util.h"
#include "umrflow/doc.h"
#include "umrflow/node.h"

namespace umrflow::test {

inline std::unique_ptr<Node> make_node(const std::string& type, const std::string& yaml = "{}") {
  static const Registry registry = builtin_registry();
  const NodeSpec* spec = registry.find(type);
  EXPECT_NE(spec, nullptr) << type;
  Diagnostics d;
  Params p = parse_params(parse_yaml(yaml, "params"), spec->params, {}, type, d);
  EXPECT_TRUE(d.empty()) << d.str();
  auto node = spec->create(p);
  node->set_id(type);
  return node;
}

/// A one-sample packet holding `tensors`.
inline Packet sample(std::map<std::string, torch::Tensor> tensors) {
  Packet p;
  p.tensors = std::move(tensors);
  p.samples.push_back({0, "case", {}});
  return p;
}

/// Applies a sample node with the stream of draw `index`.
inline Packet apply(Node& node, Packet s, std::int64_t index = 0, std::uint64_t seed = 1) {
  Context ctx(seed, 0, index, node.id(), true);
  dynamic_cast<SampleNode&>(node).apply(s, ctx);
  return s;
}

}  // namespace umrflow::test
