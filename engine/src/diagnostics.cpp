#include "umrflow/diagnostics.h"

#include <algorithm>
#include <sstream>

namespace umrflow {

std::string Location::str() const {
  if (line <= 0) return file.empty() ? "<unknown>" : file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string Diagnostic::str() const { return where.str() + ": " + message; }

void Diagnostics::error(const Location& where, std::string message) {
  items_.push_back({where, std::move(message)});
}

std::string Diagnostics::str() const {
  std::string out;
  for (const auto& d : items_) out += d.str() + "\n";
  return out;
}

void Diagnostics::throw_if_any() const {
  if (!items_.empty()) throw GraphError(*this);
}

GraphError::GraphError(Diagnostics diagnostics)
    : std::runtime_error(diagnostics.str()), diagnostics_(std::move(diagnostics)) {}

std::string readable_error(const std::string& message) {
  std::string out = message;
  for (const char* start : {"\nException raised from ", "\nframe #0:"}) {
    const std::size_t at = out.find(start);
    if (at != std::string::npos) out.erase(at);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  const bool no_memory = out.find("can't allocate memory") != std::string::npos || out.find("out of memory") != std::string::npos;
  if (no_memory && out.find("needs less memory") == std::string::npos)
    out += " (out of memory: a smaller batch, crop or sliding window needs less memory)";
  return out;
}

NodeError::NodeError(std::string node_id, std::string node_type, std::string sample, std::string reason)
    : std::runtime_error("node '" + node_id + "' (" + node_type + ") failed on sample " + sample + ": " + readable_error(reason)),
      node_id_(std::move(node_id)),
      sample_(std::move(sample)),
      reason_(readable_error(reason)) {}

namespace {
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}
}  // namespace

std::vector<std::string> nearest_names(const std::string& name, const std::vector<std::string>& candidates,
                                       std::size_t limit) {
  std::vector<std::pair<std::size_t, std::string>> scored;
  const std::size_t tolerance = std::max<std::size_t>(2, name.size() / 3);
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(name, c);
    // A candidate that contains the name (or its last dotted part) is a plausible hit too.
    const std::string tail = name.substr(name.find_last_of('.') == std::string::npos ? 0 : name.find_last_of('.') + 1);
    if (d > tolerance && !tail.empty() && tail.size() >= 3 && c.find(tail) != std::string::npos) d = tolerance;
    if (d <= tolerance) scored.emplace_back(d, c);
  }
  std::stable_sort(scored.begin(), scored.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::string> out;
  for (const auto& s : scored) {
    if (out.size() == limit) break;
    out.push_back(s.second);
  }
  return out;
}

std::string did_you_mean(const std::string& name, const std::vector<std::string>& candidates) {
  auto near = nearest_names(name, candidates);
  if (near.empty()) return "";
  std::string out = " (did you mean ";
  for (std::size_t i = 0; i < near.size(); ++i) out += (i ? ", '" : "'") + near[i] + "'";
  return out + "?)";
}

}  // namespace umrflow
