// `umrflow sweep`: one base graph, several variants (sets of overrides), one table.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <set>

#include "common.h"
#include "umrflow/files.h"
#include "umrflow/run.h"

namespace fs = std::filesystem;

namespace umrflow::cli {

std::string flow_text(const Doc& d) {
  if (d.is_null()) return "null";
  if (d.is_scalar()) {
    if (!d.quoted()) return d.text();
    std::string s = "\"";
    for (char c : d.text()) s += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    return s + "\"";
  }
  std::string out = d.is_sequence() ? "[" : "{";
  bool first = true;
  if (d.is_sequence())
    for (const auto& i : d.items()) out += (first ? "" : ", ") + flow_text(i), first = false;
  else
    for (const auto& e : d.entries()) out += (first ? "" : ", ") + e.key + ": " + flow_text(e.value), first = false;
  return out + (d.is_sequence() ? "]" : "}");
}

namespace {

struct Variant {
  std::string name;
  std::vector<std::string> sets;
  Location where;
};

/// `set:` as a map {path: value} or a list of "path=value".
void read_sets(const Doc& d, std::vector<std::string>& out, const std::string& owner, Diagnostics& diags) {
  if (d.is_map())
    for (const auto& e : d.entries()) out.push_back(e.key + "=" + flow_text(e.value));
  else if (d.is_sequence())
    for (const auto& i : d.items()) {
      if (i.is_scalar()) out.push_back(i.text());
      else diags.error(i.where(), owner + ": `set` entries are PATH=VALUE strings");
    }
  else diags.error(d.where(), owner + ": `set` is a map {path: value} or a list of PATH=VALUE");
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

/// The rows of a CSV text as csv_cell writes them (quoted cells may hold
/// commas, doubled quotes and newlines).
std::vector<std::vector<std::string>> csv_rows(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1, std::vector<std::string>(1));
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    std::string& cell = rows.back().back();
    if (quoted) {
      if (c != '"') cell += c;
      else if (i + 1 < text.size() && text[i + 1] == '"') cell += '"', ++i;
      else quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().emplace_back();
    } else if (c == '\n') {
      rows.emplace_back(1);
    } else if (c != '\r') {  // a file saved with CRLF line ends
      cell += c;
    }
  }
  if (rows.back().size() == 1 && rows.back()[0].empty()) rows.pop_back();
  return rows;
}

/// Rows of variants that this call does not run (--only) keep what the
/// folder's earlier sweep.csv holds for them, so a partial rerun does not
/// drop them from the table.
std::size_t keep_earlier_rows(const fs::path& csv, const std::vector<std::string>& names, std::vector<std::string>& status,
                              std::vector<std::map<std::string, double>>& results) {
  std::ifstream in(csv);
  if (!in) return 0;
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  const auto rows = csv_rows(text);
  if (rows.empty() || rows[0].size() < 2 || rows[0][0] != "variant" || rows[0][1] != "status") return 0;
  std::size_t kept = 0;
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const auto at = std::find(names.begin(), names.end(), rows[r][0]) - names.begin();
    if (at == static_cast<std::ptrdiff_t>(names.size()) || status[at] != "not run" || rows[r].size() < 2 || rows[r][1] == "not run") continue;
    static const std::string earlier = " (earlier run)";
    status[at] = rows[r][1];
    if (status[at].size() < earlier.size() || status[at].compare(status[at].size() - earlier.size(), earlier.size(), earlier) != 0)
      status[at] += earlier;
    ++kept;
    for (std::size_t c = 2; c < rows[r].size() && c < rows[0].size(); ++c) {
      char* end = nullptr;
      const double v = std::strtod(rows[r][c].c_str(), &end);
      if (!rows[r][c].empty() && end && *end == '\0') results[at][rows[0][c]] = v;
    }
  }
  return kept;
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

/// Runs a sweep file (see docs/graph-yaml.md, "Sweeps"): every variant is
/// validated, then those named in `only` (all when empty) run. `overrides`
/// apply after the sweep's and the variant's own. Returns the exit code.
static int run_sweep(const std::string& sweep_file, const std::vector<std::string>& overrides, Registry& registry,
              const std::string& out_dir, int threads, bool quiet, const std::vector<std::string>& only) {
  const Doc sweep = load_yaml_file(sweep_file);
  Diagnostics diags;
  if (!sweep.is_map()) {
    diags.error({sweep_file, 1, 1}, "a sweep file is a map with `base:` and `variants:`");
    diags.throw_if_any();
  }
  static const std::vector<std::string> keys = {"name", "base", "set", "metrics", "variants"};
  for (const auto& e : sweep.entries())
    if (std::find(keys.begin(), keys.end(), e.key) == keys.end())
      diags.error(e.key_where, "sweep: unknown key '" + e.key + "'" + did_you_mean(e.key, keys));
  const Doc* base = sweep.find("base");
  const Doc* variants = sweep.find("variants");
  if (!base || !base->is_scalar()) diags.error(sweep.where(), "sweep: missing `base:` (the graph file the variants change)");
  if (!variants || !variants->is_sequence() || variants->items().empty())
    diags.error(variants ? variants->where() : sweep.where(), "sweep: `variants:` is a non-empty list of {name, set}");
  diags.throw_if_any();

  // Order of overrides: the sweep's `set`, then the variant's, then the command
  // line's (the user's last word: e.g. fewer epochs for a quick look).
  std::vector<std::string> common;
  if (const Doc* s = sweep.find("set")) read_sets(*s, common, "sweep", diags);
  std::vector<std::string> metric_columns;
  if (const Doc* m = sweep.find("metrics")) {
    if (m->is_sequence())
      for (const auto& i : m->items()) metric_columns.push_back(i.text());
    else diags.error(m->where(), "sweep: `metrics` is a list of metric names");
  }
  std::vector<Variant> list;
  std::set<std::string> names;
  for (const auto& v : variants->items()) {
    Variant var;
    var.where = v.where();
    const Doc* name = v.is_map() ? v.find("name") : nullptr;
    if (!name || !name->is_scalar()) {
      diags.error(v.where(), "sweep: each variant needs a `name`");
      continue;
    }
    var.name = name->text();
    // The name becomes the variant's run folder under --out.
    const bool folder_name = !var.name.empty() && var.name[0] != '.' && std::all_of(var.name.begin(), var.name.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-' || ch == '+';
    });
    if (!folder_name)
      diags.error(name->where(), "sweep: variant name '" + var.name +
                                     "' names its run folder: use letters, digits, '.', '_', '-' and '+', not starting with '.'");
    if (!names.insert(var.name).second) diags.error(name->where(), "sweep: duplicate variant name '" + var.name + "'");
    for (const auto& e : v.entries())
      if (e.key != "name" && e.key != "set")
        diags.error(e.key_where, "variant '" + var.name + "': unknown key '" + e.key + "' (valid: name, set)");
    var.sets = common;
    if (const Doc* s = v.find("set")) read_sets(*s, var.sets, "variant '" + var.name + "'", diags);
    var.sets.insert(var.sets.end(), overrides.begin(), overrides.end());
    list.push_back(var);
  }
  diags.throw_if_any();

  fs::path base_path = base->text();
  if (base_path.is_relative()) base_path = fs::path(sweep_file).parent_path() / base_path;
  const std::string sweep_name =
      sweep.find("name") && sweep.find("name")->is_scalar() ? sweep.find("name")->text() : fs::path(sweep_file).stem().string();

  // Validate every variant before running any, so a typo in the last one costs nothing.
  std::vector<Graph> graphs;
  Diagnostics all;
  for (const auto& v : list) {
    try {
      graphs.push_back(load_and_validate(base_path.string(), v.sets, registry));
    } catch (const GraphError& e) {
      for (const auto& d : e.diagnostics().items()) all.error(d.where, "variant '" + v.name + "': " + d.message);
    }
  }
  all.throw_if_any();

  const fs::path out = out_dir.empty() ? fs::path("runs") / sweep_name : fs::path(out_dir);
  fs::create_directories(out);
  std::vector<std::map<std::string, double>> results(list.size());
  std::vector<std::string> status(list.size(), "not run");
  std::atomic<bool>& stop = install_interrupt_handler();
  int code = 0;
  for (const auto& name : only)
    if (!names.count(name))
      throw std::runtime_error("--only: the sweep has no variant '" + name + "'" +
                               did_you_mean(name, std::vector<std::string>(names.begin(), names.end())));
  for (std::size_t i = 0; i < list.size() && !stop.load(); ++i) {
    if (!only.empty() && std::find(only.begin(), only.end(), list[i].name) == only.end()) continue;
    std::fprintf(stderr, "== variant %zu/%zu: %s\n", i + 1, list.size(), list[i].name.c_str());
    RunOptions options;
    options.run_dir = (out / list[i].name).string();
    options.threads = threads;
    options.quiet = quiet;
    try {
      RunSummary s = run_graph(graphs[i], registry, options);
      results[i] = s.final_metrics;
      status[i] = s.interrupted ? "interrupted" : "done";
      if (s.interrupted) code = interrupted_exit_code();
    } catch (const std::exception& e) {
      status[i] = std::string("failed: ") + e.what();
      std::fprintf(stderr, "variant '%s' failed: %s\n", list[i].name.c_str(), e.what());
      code = code ? code : 1;
    }
  }

  if (!only.empty()) {
    std::vector<std::string> variant_names;
    for (const auto& v : list) variant_names.push_back(v.name);
    if (const auto kept = keep_earlier_rows(out / "sweep.csv", variant_names, status, results))
      std::fprintf(stderr, "%zu variant(s) not run now keep their rows from the earlier %s\n", kept, (out / "sweep.csv").c_str());
  }
  if (metric_columns.empty()) {
    std::set<std::string> seen;
    for (const auto& r : results)
      for (const auto& [k, v] : r)
        if (seen.insert(k).second) metric_columns.push_back(k);
  }
  std::string md = "| variant | status |", sep = "|---|---|", csv = "variant,status";
  for (const auto& c : metric_columns) md += " " + c + " |", sep += "---|", csv += "," + csv_cell(c);
  md += "\n" + sep + "\n";
  csv += "\n";
  for (std::size_t i = 0; i < list.size(); ++i) {
    std::string short_status = status[i].substr(0, status[i].find(':'));
    md += "| " + list[i].name + " | " + short_status + " |";
    csv += csv_cell(list[i].name) + "," + csv_cell(status[i]);
    for (const auto& c : metric_columns) {
      auto it = results[i].find(c);
      const std::string cell = it == results[i].end() ? "" : number_text(it->second);
      md += " " + cell + " |";
      csv += "," + cell;
    }
    md += "\n";
    csv += "\n";
  }
  // A column no finished variant has is most likely a typo in `metrics:`.
  std::set<std::string> reported;
  for (const auto& r : results)
    for (const auto& [k, v] : r) reported.insert(k);
  if (!reported.empty())
    for (const auto& c : metric_columns)
      if (!reported.count(c))
        std::fprintf(stderr, "warning: metric '%s' is in no variant's results, its column stays empty%s\n", c.c_str(),
                     did_you_mean(c, std::vector<std::string>(reported.begin(), reported.end())).c_str());
  write_file_atomically((out / "sweep.md").string(), "# Sweep " + sweep_name + "\n\nBase graph: `" + base->text() + "`\n\n" + md);
  write_file_atomically((out / "sweep.csv").string(), csv);
  std::cout << md;
  std::fprintf(stderr, "table written to %s and %s\n", (out / "sweep.md").c_str(), (out / "sweep.csv").c_str());
  return code;
}

void register_sweep_verb(Registry& registry) {
  VerbSpec v;
  v.path = {"sweep"};
  v.summary = "run the variants of a sweep file and tabulate their final metrics";
  v.options = {
      param::text("sweep", std::nullopt, "sweep file (YAML: base, variants)"),
      set_option(),
      param::text("out", "", "folder for the variants' run directories and the table (default runs/<sweep name>)"),
      param::integer("threads", -1, "data-plane worker threads (-1: each graph's execution.threads; 0: automatic, as execution.threads 0)").range(-1, 1024),
      param::boolean("quiet", false, "no progress bar or progress lines on stderr (each run's log.txt keeps them)"),
      param::texts("only", std::vector<std::string>{}, "run only these variants (all are still validated)"),
  };
  v.positional = {"sweep"};
  v.existing_files = {"sweep"};
  v.comma_lists = {"only"};
  v.footer = "Writes sweep.md and sweep.csv: one row per variant, one column per final metric.";
  v.run = [](const VerbCall& c) {
    const Params& o = c.options;
    return run_sweep(o.get_text("sweep"), o.get_texts("set"), c.registry, o.get_text("out"), static_cast<int>(o.get_int("threads")),
                     o.get_bool("quiet"), o.get_texts("only"));
  };
  registry.add_verb(std::move(v));
}

}  // namespace umrflow::cli
