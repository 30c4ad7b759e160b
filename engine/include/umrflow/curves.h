// umrflow/curves.h: training curves as a picture. Every run writes
// RUN_DIR/curves.svg from its metrics.jsonl when it ends or is interrupted;
// `umrflow plot RUN_DIR...` draws several runs on the same axes.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace umrflow {

/// One line of metrics.jsonl (a flat JSON object) as name -> value; keys
/// whose value is not a number are left out.
std::map<std::string, double> parse_metrics_line(const std::string& line);
/// Whether a metrics.jsonl line is one whole record, `{...}` (spaces around
/// allowed); a run killed while appending leaves a line cut short.
bool is_whole_metrics_line(const std::string& line);
/// Every whole record of a metrics.jsonl file, in order; a missing file gives
/// none. Non-empty lines that are not whole records are left out, and their
/// 1-based numbers go to `cut_lines` when it is given.
std::vector<std::map<std::string, double>> read_metrics(const std::string& metrics_jsonl,
                                                        std::vector<std::size_t>* cut_lines = nullptr);

/// The records of one run, and the name its lines carry in the legend.
struct CurveRun {
  std::string name;
  std::vector<std::map<std::string, double>> records;
};

/// A standalone SVG: one panel per metric (every key of any record but
/// `epoch`, sorted by name) with the value against the epoch, one line per
/// run in the legend's colour; a single epoch is drawn as a dot. Names are
/// XML-escaped. No runs or no metrics give an SVG that says so.
std::string curves_svg(const std::vector<CurveRun>& runs, const std::string& title);

/// Writes RUN_DIR/curves.svg (atomically) from RUN_DIR/metrics.jsonl; returns
/// false, writing nothing, when the file has no record.
bool write_curves(const std::string& run_dir);

}  // namespace umrflow
