// subset_table.h: the report of the 2D tasks in the layout of the paper's
// Table 2: one row per modality subset, fewer modalities first ("RGB",
// "Depth", then "RGB+Depth"), then the Average and the Std Dev (population)
// of each metric over those rows; as Markdown, CSV and JSON. Used by
// eval.sod_report and eval.seg_report, which compute the numbers.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "umrflow/declare.h"

namespace umrflow::eval {

/// The subsets whose rows a report collects, fixed by the first batch: each
/// later batch must list the same subsets in the same order, or its scores
/// would land in other rows.
class SubsetRows {
 public:
  /// `present` is row-major, `subsets` x `width`, 0/1 per modality. Returns
  /// true for the first batch. Throws std::runtime_error when `width` is not
  /// the number of modality names, or the subsets differ from the first
  /// batch's.
  bool check(const std::int64_t* present, std::int64_t subsets, std::int64_t width, const std::vector<std::string>& modalities);
  const std::vector<std::vector<std::int64_t>>& masks() const { return masks_; }
  bool empty() const { return masks_.empty(); }

 private:
  std::vector<std::vector<std::int64_t>> masks_;
};

/// The ports, figures and `modalities` parameter that every Table-2 report
/// node declares: `pred` (S*B, ..., subset-major), `label` (B, ...), `present`.
template <class T>
void declare_subset_report(Declaration<T>& d, std::vector<std::string> T::*modalities, const std::string& pred_shape,
                           const std::string& label_shape) {
  d.sharding(Sharding::whole);
  d.input(PortSpec{"pred", {{"pred", 4, pred_shape + ", subset-major"}}, "the network's output for all subsets"});
  d.input(PortSpec{"label", {{"label", 4, label_shape}}, "ground truth"});
  d.input(PortSpec{"present", {{"present", 2, "(S, M)"}}, "subset masks (modality.subsets)"});
  d.summary_figure({"average_*", 0, "the report's Average row: each metric's mean over the subsets"});
  d.summary_figure({"std_dev_*", 0, "the report's Std Dev row: each metric's population sd over the subsets"});
  d.param(modalities, param::texts("modalities", std::vector<std::string>{"RGB", "Depth"}, "modality names, for the row labels"));
}

struct TableMetric {
  std::string key;    ///< CSV column and JSON field
  std::string title;  ///< Markdown column
  int digits = 3;     ///< decimals in Markdown (CSV and JSON keep 6)
};

struct SubsetTable {
  std::string caption;                                       ///< the paragraph above the Markdown table
  std::vector<std::string> modalities;                       ///< names, for the row labels
  std::vector<std::vector<std::int64_t>> masks;              ///< one per subset, one 0/1 per modality
  std::vector<TableMetric> metrics;
  std::vector<std::vector<double>> values;                   ///< [subset][metric]; NaN prints as n/a / null
  std::vector<std::pair<std::string, std::string>> fields;  ///< extra top-level JSON fields, values already JSON
};

struct RenderedTable {
  std::string markdown, csv, json;
  std::map<std::string, double> average, std_dev;  ///< by metric key
};

/// Row label of a subset: the present modalities' names joined by '+'.
std::string subset_name(const std::vector<std::int64_t>& mask, const std::vector<std::string>& modalities);

/// Table 2's row order: fewer modalities first, then by the first present
/// modality (RGB before Depth).
std::vector<std::size_t> table_order(const std::vector<std::vector<std::int64_t>>& masks);

/// Renders `table`; throws std::invalid_argument when the masks, names and
/// values do not agree in size, or there are no subsets.
RenderedTable render(const SubsetTable& table);

/// Renders `table`, writes report.md, report.csv and report.json into
/// `run_dir` (each atomically), prints the Markdown, and returns the summary
/// figures: average_<key> and std_dev_<key> for each metric.
std::map<std::string, double> write_report(const SubsetTable& table, const std::string& run_dir);

/// `v` with `digits` decimals, "n/a" for NaN.
std::string fixed(double v, int digits);

}  // namespace umrflow::eval
