// umrflow/verb.h: subcommands of `umrflow`, contributed like node types.
//
// The engine contributes `run`, `validate`, `nodes`, `dot`, `sweep` and
// `bench`; a node family adds the tooling of its data (`synth brats`,
// `convert brats`, `split`) or formats (`weights`, `verify`), and a plugin adds
// verbs from the same registration function as its node types. A verb declares
// its options once, as ParamSpecs (params.h): the command line's options,
// their checks, `--help` and the Params the verb receives all come from that
// one declaration.
//
//   VerbSpec v;
//   v.path = {"synth", "brats"};                       // `umrflow synth brats`
//   v.summary = "BraTS-layout phantom cases";
//   v.options = {param::integer("cases", 24, "number of cases").min(1),
//                param::text("out", std::nullopt, "folder to write into")};
//   v.run = [](const VerbCall& call) { ...call.options.get_int("cases")...; return 0; };
//   registry.add_verb(std::move(v));
//
// On the command line an option is `--NAME VALUE` (a boolean is a flag that
// sets true); a list option is given once per value, and also splits at
// commas when named in `comma_lists`; names in `positional` are given by
// position instead, in that order (a list takes the rest). An option without
// a default is required.
//
// This header has no dependency on torch or on the command-line library.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "umrflow/params.h"

namespace umrflow {

class Registry;

/// What a verb receives when it runs.
struct VerbCall {
  const Params& options;  // every declared option: the value given, or its default
  Registry& registry;     // built-in node types and every plugin loaded so far
};

struct VerbSpec {
  std::vector<std::string> path;  // {"weights", "export"}: `umrflow weights export`
  std::string summary;            // one line for `umrflow --help`
  /// For a two-word path: the summary of the first word's group, when this
  /// verb is the first to create it (`umrflow synth --help`).
  std::string group_summary;
  std::vector<ParamSpec> options;
  std::vector<std::string> positional;   // options given by position, in order
  std::vector<std::string> comma_lists;  // list options whose values also split at commas
  std::vector<std::string> existing_files;  // text options that must name an existing file or folder
  // Text options naming a file the verb writes. Before run(), each given path
  // is refused (an error naming the option) when it is the same file as one of
  // existing_files (the verb would write over its own input), when it exists
  // and is no regular file (a folder, device or FIFO, which the write-and-
  // rename of files.h would replace), and, where the verb declares a boolean
  // option `overwrite`, when it exists and that option is not given.
  std::vector<std::string> output_files;
  // Text options naming a folder the verb writes into: refused when the path
  // is a file, or a folder that is not empty while the verb's boolean option
  // `overwrite` (which it must then declare) is not given.
  std::vector<std::string> output_folders;
  std::vector<std::pair<std::string, std::string>> short_names;  // {"output", "-o"}: a one-letter alias
  std::string footer;  // text after the options in `--help` (exit status, examples)
  std::function<int(const VerbCall&)> run;  // returns the exit status
};

}  // namespace umrflow
