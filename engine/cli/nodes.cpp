// `umrflow nodes`: the registered node types, as text or as docs/nodes.md.
#include <cstdio>
#include <iostream>

#include "common.h"
#include "umrflow/describe.h"

namespace umrflow::cli {

void register_nodes_verb(Registry& registry) {
  VerbSpec v;
  v.path = {"nodes"};
  v.summary = "list the registered node types with parameters and ports";
  v.options = {param::text("type", "", "show only this type"),
               param::boolean("markdown", false, "write the Markdown reference (docs/nodes.md)")};
  v.positional = {"type"};
  v.run = [](const VerbCall& c) {
    const std::string& type = c.options.get_text("type");
    if (!type.empty() && !c.registry.find(type)) {
      std::fprintf(stderr, "error: no node type '%s'%s\n", type.c_str(), did_you_mean(type, c.registry.types()).c_str());
      return 1;
    }
    std::cout << (c.options.get_bool("markdown") ? describe_nodes_markdown(c.registry) : describe_nodes_text(c.registry, type));
    return 0;
  };
  registry.add_verb(std::move(v));
}

}  // namespace umrflow::cli
