// `umrflow plot`: several runs' training curves on the same axes.
#include <cctype>
#include <filesystem>
#include <iostream>

#include "common.h"
#include "umrflow/curves.h"
#include "umrflow/files.h"

namespace umrflow::cli {

void register_plot_verb(Registry& registry) {
  VerbSpec v;
  v.path = {"plot"};
  v.summary = "draw the metrics of one or more run directories per epoch, on the same axes (SVG)";
  v.options = {param::texts("runs", std::nullopt, "run directories (each holds a metrics.jsonl)"),
               param::text("output", "curves.svg", "SVG file to write")};
  v.positional = {"runs"};
  v.existing_files = {"runs"};
  v.output_files = {"output"};
  v.short_names = {{"output", "-o"}};
  v.run = [](const VerbCall& c) {
    const std::string& output = c.options.get_text("output");  // checked before any metrics file is read
    std::string extension = std::filesystem::path(output).extension().string();
    for (char& ch : extension) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (extension != ".svg") throw std::runtime_error("-o '" + output + "': plot writes SVG; name a .svg file");
    std::vector<CurveRun> runs;
    for (const auto& dir : c.options.get_texts("runs")) {
      const std::filesystem::path file = std::filesystem::path(dir) / "metrics.jsonl";
      if (!std::filesystem::exists(file))
        throw std::runtime_error("'" + dir + "' has no metrics.jsonl: is it a run directory (umrflow run --out DIR)?");
      std::vector<std::size_t> cut;
      CurveRun run{std::filesystem::path(dir).lexically_normal().filename().string(), read_metrics(file.string(), &cut)};
      if (!cut.empty()) {
        std::string numbers;
        for (std::size_t i = 0; i < cut.size() && i < 5; ++i) numbers += (i ? ", " : "") + std::to_string(cut[i]);
        if (cut.size() > 5) numbers += " and " + std::to_string(cut.size() - 5) + " more";
        std::cerr << "plot: warning: '" << file.string() << "' line" << (cut.size() == 1 ? " " : "s ") << numbers
                  << (cut.size() == 1 ? " is" : " are") << " not a whole record (a run stopped while writing it?); left out\n";
      }
      if (run.name.empty()) run.name = dir;
      if (run.records.empty()) throw std::runtime_error("'" + file.string() + "' holds no epoch yet");
      runs.push_back(std::move(run));
    }
    write_file_atomically(output, curves_svg(runs, "metrics per epoch"));
    std::cout << "wrote " << output << " (" << runs.size() << " run" << (runs.size() == 1 ? "" : "s") << ")\n";
    return 0;
  };
  registry.add_verb(std::move(v));
}

}  // namespace umrflow::cli
