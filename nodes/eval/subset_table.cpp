#include "eval/subset_table.h"

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "umrflow/files.h"

namespace umrflow::eval {

std::string fixed(double v, int digits) {
  if (std::isnan(v)) return "n/a";
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

namespace {

std::string json_number(double v) { return std::isnan(v) ? "null" : fixed(v, 6); }

}  // namespace

bool SubsetRows::check(const std::int64_t* present, std::int64_t subsets, std::int64_t width, const std::vector<std::string>& modalities) {
  if (width != static_cast<std::int64_t>(modalities.size()))
    throw std::runtime_error("`present` has " + std::to_string(width) + " modalities; parameter modalities names " +
                             std::to_string(modalities.size()));
  std::vector<std::vector<std::int64_t>> masks;
  for (std::int64_t s = 0; s < subsets; ++s) masks.emplace_back(present + s * width, present + (s + 1) * width);
  if (masks_.empty()) {
    masks_ = std::move(masks);
    return true;
  }
  if (masks != masks_) throw std::runtime_error("`present` lists other subsets than in the first batch (use modality.subsets without from_tag)");
  return false;
}

std::string subset_name(const std::vector<std::int64_t>& mask, const std::vector<std::string>& modalities) {
  std::string out;
  for (std::size_t c = 0; c < mask.size() && c < modalities.size(); ++c)
    if (mask[c]) out += (out.empty() ? "" : "+") + modalities[c];
  return out;
}

std::vector<std::size_t> table_order(const std::vector<std::vector<std::int64_t>>& masks) {
  std::vector<std::size_t> order(masks.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const auto na = std::accumulate(masks[a].begin(), masks[a].end(), std::int64_t{0});
    const auto nb = std::accumulate(masks[b].begin(), masks[b].end(), std::int64_t{0});
    if (na != nb) return na < nb;
    return std::vector<std::int64_t>(masks[a].rbegin(), masks[a].rend()) < std::vector<std::int64_t>(masks[b].rbegin(), masks[b].rend());
  });
  return order;
}

RenderedTable render(const SubsetTable& t) {
  if (t.masks.empty() || t.values.size() != t.masks.size())
    throw std::invalid_argument("render: " + std::to_string(t.masks.size()) + " subsets with " + std::to_string(t.values.size()) + " rows of values");
  for (std::size_t s = 0; s < t.masks.size(); ++s)
    if (t.masks[s].size() != t.modalities.size() || t.values[s].size() != t.metrics.size())
      throw std::invalid_argument("render: subset " + std::to_string(s) + " does not match the modalities or the metrics");
  RenderedTable r;
  const double rows = static_cast<double>(t.masks.size());
  for (std::size_t m = 0; m < t.metrics.size(); ++m) {
    double sum = 0, sq = 0;
    for (const auto& v : t.values) sum += v[m];
    const double mean = sum / rows;
    for (const auto& v : t.values) sq += (v[m] - mean) * (v[m] - mean);
    r.average[t.metrics[m].key] = mean;
    r.std_dev[t.metrics[m].key] = std::sqrt(sq / rows);
  }
  std::ostringstream md, csv, json;
  md << t.caption << "\n\n| input |";
  csv << "input";
  json << "{\n";
  for (const auto& [key, value] : t.fields) json << "  " << json_quoted(key) << ": " << value << ",\n";
  json << "  \"subsets\": [\n";
  for (const TableMetric& m : t.metrics) {
    md << " " << m.title << " |";
    csv << "," << m.key;
  }
  md << "\n|---|";
  for (std::size_t k = 0; k < t.metrics.size(); ++k) md << "---|";
  md << "\n";
  csv << "\n";
  const std::vector<std::size_t> order = table_order(t.masks);
  for (std::size_t k = 0; k < order.size(); ++k) {
    const std::size_t s = order[k];
    const std::string name = subset_name(t.masks[s], t.modalities);
    md << "| " << name << " |";
    csv << name;
    json << "    {\"input\": " << json_quoted(name);
    for (std::size_t m = 0; m < t.metrics.size(); ++m) {
      md << " " << fixed(t.values[s][m], t.metrics[m].digits) << " |";
      csv << "," << fixed(t.values[s][m], 6);
      json << ", " << json_quoted(t.metrics[m].key) << ": " << json_number(t.values[s][m]);
    }
    md << "\n";
    csv << "\n";
    json << "}" << (k + 1 < order.size() ? "," : "") << "\n";
  }
  auto summary_row = [&](const char* label, const std::map<std::string, double>& row, bool bold) {
    md << "| " << (bold ? "**" : "") << label << (bold ? "**" : "") << " |";
    csv << label;
    for (const TableMetric& m : t.metrics) {
      md << " " << (bold ? "**" : "") << fixed(row.at(m.key), m.digits) << (bold ? "**" : "") << " |";
      csv << "," << fixed(row.at(m.key), 6);
    }
    md << "\n";
    csv << "\n";
  };
  summary_row("Average", r.average, true);
  summary_row("Std Dev", r.std_dev, false);
  auto json_row = [&](const std::map<std::string, double>& row) {
    std::string out;
    for (const TableMetric& m : t.metrics) out += (out.empty() ? "" : ", ") + json_quoted(m.key) + ": " + json_number(row.at(m.key));
    return "{" + out + "}";
  };
  json << "  ],\n  \"average\": " << json_row(r.average) << ",\n  \"std_dev\": " << json_row(r.std_dev) << "\n}\n";
  r.markdown = md.str();
  r.csv = csv.str();
  r.json = json.str();
  return r;
}

std::map<std::string, double> write_report(const SubsetTable& table, const std::string& run_dir) {
  const RenderedTable r = render(table);
  write_file_atomically(run_dir + "/report.md", r.markdown);
  write_file_atomically(run_dir + "/report.csv", r.csv);
  write_file_atomically(run_dir + "/report.json", r.json);
  std::printf("%s", r.markdown.c_str());
  std::map<std::string, double> figures;
  for (const TableMetric& m : table.metrics) {
    figures["average_" + m.key] = r.average.at(m.key);
    figures["std_dev_" + m.key] = r.std_dev.at(m.key);
  }
  return figures;
}

}  // namespace umrflow::eval
