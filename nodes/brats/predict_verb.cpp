// `umrflow predict`: segment new scans with a trained network. The verb lists
// the cases (brats/predict.h), builds the graph of the evaluation's inference
// for them (brats.scans -> z-score -> the network's sliding window ->
// brats.write_labels) and runs it in a temporary run directory.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "brats/brats.h"
#include "brats/predict.h"
#include "builtin.h"
#include "io/state_dict.h"
#include "umrflow/doc.h"
#include "umrflow/files.h"
#include "umrflow/run.h"

namespace fs = std::filesystem;

namespace umrflow::nodes {

namespace {

std::string absolute(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

/// The one case given file by file: --flair/--t1ce/--t1/--t2 and --scan NAME=FILE.
brats::PredictCase single_case(const Params& o, const std::vector<std::string>& modalities) {
  brats::PredictCase c;
  c.files.resize(modalities.size());
  auto put = [&](const std::string& name, const std::string& file, const std::string& option) {
    const std::size_t k = brats::modality_index(modalities, name);
    if (k == modalities.size()) {
      std::string known;
      for (const auto& m : modalities) known += (known.empty() ? "" : ", ") + m;
      throw std::runtime_error(option + ": unknown modality '" + name + "' (the network's modalities are " + known +
                               "; --modalities sets them)");
    }
    if (!c.files[k].empty()) throw std::runtime_error(option + ": modality '" + name + "' is given twice");
    if (!fs::is_regular_file(file)) throw std::runtime_error(option + ": '" + file + "': no such file");
    c.files[k] = absolute(file);
  };
  for (const char* m : {"flair", "t1ce", "t1", "t2"})
    if (!o.get_text(m).empty()) put(m, o.get_text(m), std::string("--") + m);
  for (const auto& s : o.get_texts("scan")) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
      throw std::runtime_error("--scan '" + s + "': write NAME=FILE, e.g. --scan flair=case_flair.nii.gz");
    put(s.substr(0, eq), s.substr(eq + 1), "--scan " + s);
  }
  c.out = absolute(o.get_text("out"));
  c.id = o.get_text("id").empty() ? fs::path(brats::nifti_stem(c.out)).filename().string() : o.get_text("id");
  return c;
}

/// `what` of a data node of the training graph: its own list, else the
/// declared default of its type; empty when the type has no such parameter.
std::vector<std::string> data_node_list(const Doc& node, const Registry& registry, const std::string& what) {
  const Doc* type = node.find("type");
  const NodeSpec* spec = type && type->is_scalar() ? registry.find(type->text()) : nullptr;
  if (!spec) return {};
  const auto p = std::find_if(spec->params.begin(), spec->params.end(), [&](const ParamSpec& q) { return q.name == what; });
  if (p == spec->params.end() || p->type != ParamType::texts) return {};
  std::vector<std::string> out;
  if (const Doc* given = node.find(what); given && given->is_sequence()) {
    for (const auto& v : given->items()) out.push_back(v.text());
  } else if (p->default_value) {
    out = std::get<std::vector<std::string>>(*p->default_value);
  }
  return out;
}

/// --modalities and --regions must be the training graph's channel order
/// (its case loader's), else the label map names channels wrongly.
void check_channel_order(const Doc& doc, const std::string& graph, const Params& o, const Registry& registry) {
  const Doc* data = doc.find("data");
  if (!data || !data->is_sequence()) return;
  for (const auto& node : data->items())
    for (const char* what : {"modalities", "regions"}) {
      const std::vector<std::string> trained = data_node_list(node, registry, what), given = o.get_texts(what);
      if (trained.empty() || trained == given) continue;
      const auto joined = [](const std::vector<std::string>& v) {
        std::string s;
        for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
        return s;
      };
      const Doc* id = node.find("id");
      throw std::runtime_error("--" + std::string(what) + " " + joined(given) + " is not the order the network was trained with: " +
                               joined(trained) + " (data node '" + (id ? id->text() : "?") + "' of '" + graph + "'); give --" + what +
                               " " + joined(trained));
    }
}

/// The network: the module of the graph the weights were trained with (given,
/// or the run directory's graph.yaml), or the default unimrseg.net. The
/// graph's channel orders are checked against --modalities and --regions.
Doc network_module(const Params& o, const Registry& registry, const std::string& weights, bool run_checkpoint, std::string* prefix) {
  std::string graph = o.get_text("graph");
  const fs::path beside = fs::path(weights).parent_path() / "graph.yaml";
  if (graph.empty() && run_checkpoint && fs::exists(beside)) graph = beside.string();
  if (graph.empty()) {
    *prefix = "net";
    Doc m = Doc::map();
    m.set("type", Doc::scalar("unimrseg.net"));
    m.set("adapter", Doc::scalar("true"));
    return m;
  }
  const Doc doc = load_graph_doc(graph);
  check_channel_order(doc, graph, o, registry);
  const Doc* modules = doc.find("modules");
  if (!modules || !modules->is_map() || modules->entries().empty()) throw std::runtime_error("'" + graph + "' declares no modules");
  std::string id = o.get_text("module");
  std::string listed;
  for (const auto& e : modules->entries()) listed += (listed.empty() ? "" : ", ") + e.key;
  if (id.empty()) {
    if (modules->entries().size() != 1)
      throw std::runtime_error("'" + graph + "' has modules " + listed + "; name the network with --module (a network split into " +
                               "parts: `umrflow weights export` then `weights import --module net` makes it one)");
    id = modules->entries().front().key;
  }
  const Doc* m = modules->find(id);
  if (!m || !m->is_map()) throw std::runtime_error("'" + graph + "' has no module '" + id + "' (it has " + listed + ")");
  Doc out = *m;
  out.erase("init");
  out.erase("frozen");
  *prefix = id;
  std::fprintf(stderr, "network: module '%s' of %s\n", id.c_str(), graph.c_str());
  return out;
}

Doc ints(const std::vector<std::int64_t>& v) {
  Doc d = Doc::sequence();
  for (auto x : v) d.push(Doc::scalar(std::to_string(x)));
  return d;
}

Doc texts(const std::vector<std::string>& v) {
  Doc d = Doc::sequence();
  for (const auto& x : v) d.push(Doc::scalar(x));
  return d;
}

Doc node(std::initializer_list<std::pair<const char*, Doc>> entries) {
  Doc d = Doc::map();
  for (const auto& [k, v] : entries) d.set(k, v);
  return d;
}

Doc text(const std::string& s) {
  Doc d = Doc::scalar(s);
  d.set_quoted(true);
  return d;
}

Doc number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return Doc::scalar(buf);
}

/// The inference graph of eval_brats.yaml for the listed cases.
Doc predict_graph(const Params& o, const Doc& module, const std::string& list, const std::vector<std::string>& modalities) {
  Doc g = Doc::map();
  g.set("umrflow", Doc::scalar("1"));
  g.set("name", Doc::scalar("predict"));
  g.set("seed", Doc::scalar("0"));
  g.set("execution", node({{"device", Doc::scalar(o.get_text("device"))}}));
  g.set("modules", node({{"net", module}}));
  Doc data = Doc::sequence();
  data.push(node({{"id", Doc::scalar("scans")}, {"type", Doc::scalar("brats.scans")}, {"list", text(list)}}));
  std::string last = "scans";
  if (o.get_text("crop") == "foreground") {
    data.push(node({{"id", Doc::scalar("foreground")}, {"type", Doc::scalar("volume.crop_foreground")}, {"in", Doc::scalar(last)},
                    {"k_divisible", ints({1, 1, 1})}}));
    last = "foreground";
  }
  data.push(node({{"id", Doc::scalar("norm")}, {"type", Doc::scalar("volume.zscore_nonzero")}, {"in", Doc::scalar(last)}}));
  data.push(node({{"id", Doc::scalar("batch")}, {"type", Doc::scalar("batch")}, {"in", Doc::scalar("norm")}, {"size", Doc::scalar("1")}}));
  g.set("data", data);
  Doc step = Doc::sequence();
  step.push(node({{"id", Doc::scalar("subsets")}, {"type", Doc::scalar("modality.subsets")}, {"in", Doc::scalar("batch.image")},
                  {"modalities", texts(modalities)}, {"from_tag", Doc::scalar("true")}}));
  step.push(node({{"id", Doc::scalar("seg")}, {"type", Doc::scalar("call")}, {"module", Doc::scalar("net")},
                  {"in", node({{"auto", Doc::scalar("subsets")}})}, {"window", ints(o.get_ints("window"))},
                  {"overlap", number(o.get_number("overlap"))}, {"window_batch", Doc::scalar(std::to_string(o.get_int("window-batch")))}}));
  step.push(node({{"id", Doc::scalar("write")}, {"type", Doc::scalar("brats.write_labels")},
                  {"in", node({{"pred", Doc::scalar("seg.logits")}, {"case", Doc::scalar("batch.affine")}})}, {"list", text(list)},
                  {"regions", texts(o.get_texts("regions"))}, {"threshold", number(o.get_number("threshold"))},
                  {"probabilities", Doc::scalar(o.get_bool("probabilities") ? "true" : "false")},
                  {"et_label", Doc::scalar(std::to_string(o.get_int("et-label")))}}));
  g.set("step", step);
  return g;
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = 0; !from.empty() && (at = text.find(from, at)) != std::string::npos; at += to.size()) text.replace(at, from.size(), to);
  return text;
}

int predict(const VerbCall& call) {
  const Params& o = call.options;
  const auto& modalities = o.get_texts("modalities");
  const bool folder = !o.get_text("input").empty();
  bool single = !o.get_texts("scan").empty();
  for (const char* m : {"flair", "t1ce", "t1", "t2"}) single = single || !o.get_text(m).empty();
  if (folder == single)
    throw std::runtime_error(folder ? "give either --input DIR or the scans of one case (--flair ... or --scan NAME=FILE), not both"
                                    : "nothing to segment: give the scans of one case (--flair FILE --t1ce FILE ... --out SEG.nii.gz) "
                                      "or a folder of cases (--input DIR --output DIR)");
  brats::PredictList list;
  list.modalities = modalities;
  if (single) {
    if (o.get_text("out").empty()) throw std::runtime_error("--out SEG.nii.gz: where to write the label map of this case");
    list.cases.push_back(single_case(o, modalities));
  } else {
    if (o.get_text("output").empty()) throw std::runtime_error("--output DIR: the folder for the label maps (<case id>.nii.gz)");
    list.cases = brats::find_predict_cases(absolute(o.get_text("input")), o.get_text("pattern"), modalities, absolute(o.get_text("output")));
  }
  // Nothing is overwritten unless asked; every output is checked before any work.
  // With --skip-existing a case whose label map exists is left out: the
  // label map is written last and every file whole, so an existing label map
  // means a finished case. A case without its label map is redone, replacing
  // probability maps a failure left.
  const bool print_graph = o.get_bool("print-graph"), skip_existing = o.get_bool("skip-existing"), overwrite = o.get_bool("overwrite");
  if (skip_existing && overwrite)
    throw std::runtime_error("--skip-existing and --overwrite contradict each other: give one (skip the cases done, or redo them)");
  std::vector<brats::PredictCase> to_do;
  for (const auto& c : list.cases) {
    const std::string out = c.out;
    if (!print_graph && (out.size() < 5 || brats::nifti_stem(out) == out))
      throw std::runtime_error("'" + out + "': the label map must be a .nii.gz or .nii file");
    std::vector<std::string> outputs = {out};
    if (o.get_bool("probabilities"))
      for (const auto& r : o.get_texts("regions")) outputs.push_back(brats::nifti_stem(out) + "_" + r + ".nii.gz");
    if (skip_existing && fs::exists(out)) {
      std::string missing;
      for (const auto& f : outputs)
        if (!fs::exists(f)) missing += (missing.empty() ? "'" : ", '") + f + "'";
      if (missing.empty()) continue;
      if (!print_graph)
        throw std::runtime_error("case '" + c.id + "' has its label map '" + out + "' but not " + missing +
                                 ": remove the label map to redo the case, or drop --skip-existing and give --overwrite");
    }
    if (!print_graph && !overwrite && !skip_existing)
      for (const auto& f : outputs)
        if (fs::exists(f))
          throw std::runtime_error("'" + f + "' exists; pass --overwrite to replace it, --skip-existing to leave the finished cases out, or write elsewhere");
    if (!print_graph) fs::create_directories(fs::path(out).parent_path());
    to_do.push_back(c);
  }
  if (const std::size_t skipped = list.cases.size() - to_do.size(); skipped > 0)
    std::fprintf(stderr, "predict: %zu of %zu case(s) already have their outputs; skipped (--skip-existing)\n", skipped, list.cases.size());
  if (to_do.empty()) {
    std::fprintf(stderr, "predict: nothing to do\n");
    return 0;
  }
  list.cases = std::move(to_do);

  ScratchFolder scratch("umrflow-predict-");  // removed when the verb ends, whatever happens
  const fs::path scratch_path = scratch.path();
  const std::string list_path = (scratch_path / "cases.yaml").string();
  brats::write_predict_list(list_path, list);
  const std::string weights = o.get_text("weights");
  const bool run_checkpoint = io::is_run_checkpoint(weights);
  std::string prefix;
  Doc module = network_module(o, call.registry, weights, run_checkpoint, &prefix);
  std::string init_from = absolute(weights);
  if (!run_checkpoint) {  // a PyTorch state dict with the authors' key names
    init_from = (scratch_path / "weights.pt").string();
    io::import_state_dict(weights, init_from, "net");
    prefix = "net";
  }
  module.set("init", node({{"from", text(init_from)}, {"prefix", Doc::scalar(prefix)}}));
  const Doc graph_doc = predict_graph(o, module, list_path, modalities);
  const std::string graph_path = (scratch_path / "predict.yaml").string();
  write_file_atomically(graph_path, "# built by umrflow predict\n" + to_yaml(graph_doc));
  if (print_graph) {  // with the overrides, beside its case list, kept for `umrflow run`
    const std::string text = "# built by umrflow predict\n" + to_yaml(load_graph_doc(graph_path, o.get_texts("set")));
    write_file_atomically(graph_path, text);
    scratch.keep();
    std::printf("%s", text.c_str());
    std::fprintf(stderr, "kept in %s (the graph and its case list): umrflow run %s\n", scratch_path.c_str(), graph_path.c_str());
    return 0;
  }

  std::fprintf(stderr, "predict: %zu case(s), window %s, overlap %g\n", list.cases.size(), ("[" + [&] {
                 std::string s;
                 for (auto w : o.get_ints("window")) s += (s.empty() ? "" : ", ") + std::to_string(w);
                 return s;
               }() + "]").c_str(), o.get_number("overlap"));
  const auto t0 = std::chrono::steady_clock::now();
  RunSummary summary;
  try {
    const Graph graph = load_graph(graph_path, o.get_texts("set"), call.registry);
    RunOptions options;
    options.run_dir = (scratch_path / "run").string();
    options.quiet = o.get_bool("quiet");
    options.progress_only = true;
    install_interrupt_handler();
    summary = run_graph(graph, call.registry, options);
  } catch (const GraphError& e) {
    throw std::runtime_error(std::string(e.what()) + "\n  (in the graph predict built from its options and --set; --print-graph shows it)");
  } catch (const std::exception& e) {
    std::string msg = replaced(e.what(), init_from, weights);
    // Only the errors of loading the weights into the module (instance.cpp), not a scan's shape.
    if (msg.find("has no tensor") != std::string::npos || (msg.find("module '") != std::string::npos && msg.find("has shape") != std::string::npos))
      msg += "\n  the weights do not fit this network: pass the graph they were trained with (--graph), or set its "
             "parameters, e.g. --set 'modules.net.widths=[...]' or --set modules.net.adapter=false";
    const auto finished = std::count_if(list.cases.begin(), list.cases.end(), [](const brats::PredictCase& c) { return fs::exists(c.out); });
    if (folder && finished > 0)
      msg += "\n  the label maps of " + std::to_string(finished) + " case(s) finished before it are kept; after fixing or removing the "
             "failing case, the same command with --skip-existing (without --overwrite) goes on from there";
    throw std::runtime_error(msg);
  }
  if (summary.interrupted) {
    std::fprintf(stderr, "interrupted; label maps written so far are complete, the rest were not started%s\n",
                 folder ? " (the same command with --skip-existing, without --overwrite, goes on from there)" : "");
    return interrupted_exit_code();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "predict: %zu case(s) in %.1f s (%.2f s per case) -> %s\n", list.cases.size(), seconds,
               seconds / static_cast<double>(list.cases.size()),
               single ? list.cases.front().out.c_str() : absolute(o.get_text("output")).c_str());
  return 0;
}

}  // namespace

void register_predict_verb(Registry& registry) {
  VerbSpec v;
  v.path = {"predict"};
  v.summary = "segment new scans (one case, or a folder of cases) with any subset of the modalities";
  v.options = {
      param::text("weights", std::nullopt, "run checkpoint (last.pt, best.pt) or PyTorch state dict with the authors' key names"),
      param::text("flair", "", "FLAIR scan of the one case (.nii or .nii.gz)"),
      param::text("t1ce", "", "T1ce scan of the one case"),
      param::text("t1", "", "T1 scan of the one case"),
      param::text("t2", "", "T2 scan of the one case"),
      param::texts("scan", std::vector<std::string>{}, "NAME=FILE: a scan of the one case by modality name (repeatable)"),
      param::text("out", "", "label map of the one case (.nii.gz)"),
      param::text("id", "", "the one case's id in messages (default: from --out)"),
      param::text("input", "", "folder of cases: BraTS layout (ID/ID_flair.nii.gz) or flat files named by --pattern"),
      param::text("output", "", "folder for the label maps of --input, one <case id>.nii.gz each"),
      param::text("pattern", "{id}_{modality}.nii.gz",
                  "file names under --input; {id} and {modality} are placeholders ({id}-{modality}.nii.gz for BraTS 2023 on, "
                  "whose t2f, t1c, t1n and t2w are read as flair, t1ce, t1 and t2)"),
      param::texts("modalities", brats::default_modalities(), "the network's input channels, in order"),
      param::texts("regions", std::vector<std::string>{"TC", "WT", "ET"}, "the network's output channels, in order"),
      param::text("graph", "", "graph the weights were trained with (default: graph.yaml beside a run checkpoint; else unimrseg.net's defaults with the adapter)"),
      param::text("module", "", "the network's module id in --graph (needed when it declares several)"),
      param::integers("window", std::vector<std::int64_t>{128, 128, 128}, "sliding window size").length(3).min(1),
      param::number("overlap", 0.5, "sliding window overlap").range(0, 0.99),
      param::integer("window-batch", 1, "windows per forward pass (4 as released; faster on a GPU)").min(1),
      param::choice("crop", "none", {"none", "foreground"},
                    "none: the whole volume, as the released evaluation; foreground: only the box of non-zero voxels (faster when it needs fewer windows)"),
      param::number("threshold", 0.5, "sigmoid(logit) above this is foreground").range(0, 1),
      param::boolean("probabilities", false, "also write each region's probability map, <out>_<REGION>.nii.gz"),
      param::integer("et-label", 4, "the enhancing tumour's value in the label maps: 4 as BraTS 2018-2021, 3 as BraTS 2023 on").range(3, 4),
      param::choice("device", "auto", {"auto", "cpu", "cuda"}, "where the network runs (auto: CUDA when available)"),
      param::boolean("overwrite", false, "replace label maps that exist"),
      param::boolean("skip-existing", false,
                     "leave out the cases whose label map (and, with --probabilities, every map) exists, to finish a folder "
                     "after a stop or a failed case; a case without its label map is redone"),
      param::texts("set", std::vector<std::string>{}, "PATH=VALUE overrides of the built graph, e.g. modules.net.widths=[8,16,32,32]"),
      param::boolean("print-graph", false, "print the graph predict would run (a file for `umrflow run`) and stop"),
      param::boolean("quiet", false, "no progress bar"),
  };
  v.existing_files = {"weights"};
  v.comma_lists = {"modalities", "regions", "window"};
  v.footer =
      "Examples:\n"
      "  umrflow predict --weights runs/stage3_brats/best.pt --flair a_flair.nii.gz --t1ce a_t1ce.nii.gz --out a_seg.nii.gz\n"
      "  umrflow predict --weights unimrseg_brats.pth --input BraTS2020_Validation --output seg/\n"
      "  umrflow predict --weights best.pt --input BraTS2023_Validation --output seg/ --pattern '{id}-{modality}.nii.gz' --et-label 3\n"
      "Scans are z-scored on their non-zero voxels; a modality without a scan is zeros, and the network takes the path\n"
      "of that subset (the adapter for an incomplete one). The label map has the first scan's grid and header, labels\n"
      "0, 1 (necrosis), 2 (oedema), 4 (enhancing; 3 with --et-label 3). See docs/predict.md.";
  v.run = predict;
  registry.add_verb(std::move(v));
}

}  // namespace umrflow::nodes
