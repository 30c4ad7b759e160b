// `umrflow dot`: a graph as Graphviz.
#include <iostream>

#include "common.h"
#include "umrflow/files.h"

namespace umrflow::cli {

void register_dot_verb(Registry& registry) {
  VerbSpec v;
  v.path = {"dot"};
  v.summary = "write the graph as Graphviz (dot -Tsvg to draw it)";
  v.options = {param::text("graph", std::nullopt, "graph file (YAML)"),
               param::text("output", "", "file to write (default: standard output)"), set_option()};
  v.positional = {"graph"};
  v.existing_files = {"graph"};
  v.output_files = {"output"};
  v.short_names = {{"output", "-o"}};
  v.run = [](const VerbCall& c) {
    LoadChecks checks;
    checks.init_exists = false;  // drawing loads no weights
    const std::string text = graph_to_dot(load_and_validate(c.options.get_text("graph"), c.options.get_texts("set"), c.registry, checks));
    const std::string& output = c.options.get_text("output");
    if (output.empty()) std::cout << text;
    else write_file_atomically(output, text);
    return 0;
  };
  registry.add_verb(std::move(v));
}

}  // namespace umrflow::cli
