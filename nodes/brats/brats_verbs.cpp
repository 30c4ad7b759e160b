// The BraTS family's data verbs: `synth brats` (phantom cases), `convert
// brats` (NIfTI folders to the HDF5 cache) and `split` (a seeded case split).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "brats/brats.h"
#include "builtin.h"
#include "io/h5cache.h"
#include "io/split.h"
#include "umrflow/registry.h"

namespace fs = std::filesystem;

namespace umrflow::nodes {

namespace {

void progress(std::int64_t i, std::int64_t n) {
  std::fprintf(stderr, "\r  case %lld/%lld", static_cast<long long>(i), static_cast<long long>(n));
  if (i == n) std::fprintf(stderr, "\n");
}

int synth_brats(const VerbCall& c) {
  const Params& o = c.options;
  brats::PhantomOptions phantom;
  phantom.cases = o.get_int("cases");
  phantom.size = o.get_int("size");
  phantom.seed = static_cast<std::uint64_t>(o.get_int("seed"));
  phantom.out = o.get_text("out");
  phantom.template_path = o.get_text("template");
  phantom.procedural = o.get_bool("procedural");
  const bool with_template = !phantom.procedural && (!phantom.template_path.empty() || fs::exists(brats::default_template_path()));
  std::fprintf(stderr, "writing %lld phantom case(s) of %lldx%lldx%lld into %s (%s anatomy)\n", static_cast<long long>(phantom.cases),
               static_cast<long long>(phantom.size), static_cast<long long>(phantom.size),
               static_cast<long long>(std::max<std::int64_t>(8, phantom.size * 155 / 240)), phantom.out.c_str(),
               with_template ? "template" : "procedural");
  brats::write_phantoms(phantom, progress);
  return 0;
}

int convert_brats(const VerbCall& c) {
  const Params& o = c.options;
  std::fprintf(stderr, "converting %s into %s\n", o.get_text("src").c_str(), o.get_text("out").c_str());
  brats::convert_to_cache(o.get_text("src"), o.get_text("out"), o.get_texts("modalities"), o.get_texts("regions"), progress);
  return 0;
}

/// The case ids of a text file, one per line ('#' starts a comment line;
/// blanks around an id and empty lines are ignored). A line with control
/// characters or bytes outside ASCII is an error naming it: such a file is no
/// id list (a scan given by mistake).
std::vector<std::string> read_id_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read '" + path + "' (give a data folder, an HDF5 cache or a text file of case ids)");
  std::vector<std::string> ids;
  std::size_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    const auto first = line.find_first_not_of(" \t\r"), last = line.find_last_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const std::string id = line.substr(first, last - first + 1);
    if (std::any_of(id.begin(), id.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) > 0x7e; }))
      throw std::runtime_error(path + ":" + std::to_string(number) +
                               ": not a case id (control characters or non-ASCII bytes); --from takes a data folder, an "
                               "HDF5 cache (.h5) or a text file with one case id per line");
    ids.push_back(id);
  }
  return ids;
}

int split(const VerbCall& c) {
  const Params& o = c.options;
  const std::string& from = o.get_text("from");
  std::vector<std::string> ids;
  if (fs::is_directory(from)) {
    for (const auto& k : brats::discover_cases(from, brats::default_modalities())) ids.push_back(k.id);
  } else if (fs::path(from).extension() == ".h5") {
    const io::CacheReader cache(from);  // cases() refers into the reader
    for (const auto& k : cache.cases()) ids.push_back(k.id);
  } else {
    ids = read_id_list(from);
  }
  if (ids.empty()) throw std::runtime_error("no case ids found in '" + from + "'");
  const auto seed = static_cast<std::uint64_t>(o.get_int("seed"));
  const io::Split s = io::make_split(ids, o.get_number("val"), o.get_number("test"), seed);
  const std::string& out = o.get_text("out");
  io::write_split(out, s,
                  "umrflow split: " + std::to_string(ids.size()) + " cases, seed " + std::to_string(seed) + ", " +
                      std::to_string(s.subsets.at("train").size()) + " train / " + std::to_string(s.subsets.at("val").size()) +
                      " val / " + std::to_string(s.subsets.at("test").size()) + " test");
  std::printf("%s: %zu train, %zu val, %zu test\n", out.c_str(), s.subsets.at("train").size(), s.subsets.at("val").size(),
              s.subsets.at("test").size());
  return 0;
}

}  // namespace

void register_brats_verbs(Registry& registry) {
  VerbSpec synth;
  synth.path = {"synth", "brats"};
  synth.group_summary = "write synthetic data sets";
  synth.summary = "BraTS-layout phantom cases: brain anatomy, a tumour with core, rim and oedema, four MRI contrasts";
  synth.options = {
      param::integer("cases", 8, "number of cases").range(1, 100000),
      param::integer("size", 64, "X and Y size in voxels; Z is size*155/240").range(16, 512),
      param::integer("seed", 1, "seed; the same seed writes the same cases").min(0),
      param::text("out", std::nullopt, "folder to write the case folders into"),
      param::text("template", "", "brain template (default: mricron-data's ch2bet.nii.gz; a procedural head when absent)"),
      param::boolean("procedural", false, "use the procedural head even when the template is installed"),
      param::boolean("overwrite", false, "write into OUT even when it is not empty"),
  };
  synth.output_folders = {"out"};
  synth.run = synth_brats;
  registry.add_verb(std::move(synth));

  VerbSpec convert;
  convert.path = {"convert", "brats"};
  convert.group_summary = "convert a data set into a cache file";
  convert.summary = "BraTS NIfTI folders -> one HDF5 file: each case cropped to its brain box, chunked, compressed";
  convert.options = {
      param::text("src", std::nullopt, "folder holding the case folders"),
      param::text("out", std::nullopt, "the .h5 file to write (written whole, then renamed into place)"),
      param::texts("modalities", brats::default_modalities(), "modality file suffixes in channel order"),
      param::texts("regions", std::vector<std::string>{"TC", "WT", "ET"}, "label region channels (TC, WT, ET, NCR, ED)"),
  };
  convert.existing_files = {"src"};
  convert.output_files = {"out"};
  convert.comma_lists = {"modalities", "regions"};
  convert.footer = "The layout is documented in docs/datasets.md; read the file with the node brats.h5.";
  convert.run = convert_brats;
  registry.add_verb(std::move(convert));

  VerbSpec s;
  s.path = {"split"};
  s.summary = "write a seeded train/val/test split of a data set's case ids";
  s.options = {
      param::text("from", std::nullopt, "case folders (BraTS layout), a cache .h5, or a text file of ids (one per line)"),
      param::number("val", 0.05, "fraction of cases for validation").range(0, 1),
      param::number("test", 0.10, "fraction of cases for testing").range(0, 1),
      param::integer("seed", 2025, "the same seed and ids give the same split").min(0),
      param::text("out", std::nullopt, "split file to write (YAML), e.g. datasets/brats2020/split.yaml"),
  };
  s.existing_files = {"from"};
  s.output_files = {"out"};
  s.run = split;
  registry.add_verb(std::move(s));
}

}  // namespace umrflow::nodes
