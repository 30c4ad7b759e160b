// verbs.h: the registry's verbs (umrflow/verb.h) as CLI11 subcommands.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <vector>

#include "umrflow/registry.h"

namespace umrflow::cli {

/// Adds a subcommand to `app` for every verb of `registry`, with its options
/// declared from the verb's ParamSpecs. After app.parse(), run() builds the
/// chosen verb's Params and runs it.
class VerbCommands {
 public:
  VerbCommands(CLI::App& app, Registry& registry);
  ~VerbCommands();
  /// The exit status of the verb the command line chose.
  int run();

 private:
  struct Bound;
  Registry& registry_;
  std::vector<std::unique_ptr<Bound>> bound_;
};

/// The checks of VerbSpec::output_files on the parsed options (verb.h);
/// throws std::runtime_error naming the option and the path.
void check_output_files(const VerbSpec& verb, const Params& params);

/// Plugins named by `--plugin X` / `--plugin=X` anywhere in argv, read before
/// the command line is parsed, since a plugin may add a verb.
std::vector<std::string> plugins_in_arguments(int argc, char** argv);

}  // namespace umrflow::cli
