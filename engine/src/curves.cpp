#include "umrflow/curves.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "umrflow/files.h"

namespace umrflow {

namespace {

constexpr double kPanelW = 300, kPanelH = 190, kPad = 14, kLeft = 58, kBottom = 28, kTop = 26;
constexpr int kColumns = 3;
const char* const kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string coord(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

}  // namespace

std::map<std::string, double> parse_metrics_line(const std::string& line) {
  std::map<std::string, double> out;
  std::size_t pos = 0;
  while ((pos = line.find('"', pos)) != std::string::npos) {
    const std::size_t end = line.find('"', pos + 1);
    if (end == std::string::npos) break;
    const std::string key = line.substr(pos + 1, end - pos - 1);
    const std::size_t colon = line.find(':', end);
    if (colon == std::string::npos) break;
    std::size_t value = line.find_first_not_of(" \t", colon + 1);
    if (value == std::string::npos) break;
    if (line[value] == '"') {  // a string value: skip it, escapes included
      std::size_t close = value + 1;
      while (close < line.size() && line[close] != '"') close += line[close] == '\\' ? 2 : 1;
      pos = close + 1;
      continue;
    }
    const char* start = line.c_str() + value;
    char* stop = nullptr;
    const double v = std::strtod(start, &stop);
    if (stop != start) out[key] = v;
    pos = stop != start ? static_cast<std::size_t>(stop - line.c_str()) : value + 1;
  }
  return out;
}

bool is_whole_metrics_line(const std::string& line) {
  const std::size_t first = line.find_first_not_of(" \t\r"), last = line.find_last_not_of(" \t\r");
  return first != std::string::npos && line[first] == '{' && line[last] == '}';
}

std::vector<std::map<std::string, double>> read_metrics(const std::string& path, std::vector<std::size_t>* cut_lines) {
  std::vector<std::map<std::string, double>> out;
  std::ifstream in(path);
  std::size_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (is_whole_metrics_line(line))
      out.push_back(parse_metrics_line(line));
    else if (cut_lines && line.find_first_not_of(" \t\r") != std::string::npos)
      cut_lines->push_back(number);
  }
  return out;
}

std::string curves_svg(const std::vector<CurveRun>& runs, const std::string& title) {
  std::set<std::string> names;
  for (const auto& r : runs)
    for (const auto& rec : r.records)
      for (const auto& [k, v] : rec)
        if (k != "epoch") names.insert(k);
  const int panels = static_cast<int>(names.size());
  const int rows = std::max(1, (panels + kColumns - 1) / kColumns);
  const double legend = 22.0 * static_cast<double>(runs.size()) + 30;
  const double width = kColumns * (kPanelW + kPad) + kPad, height = legend + rows * (kPanelH + kPad) + kPad;
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + coord(width) + "\" height=\"" + coord(height) +
                  "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + coord(kPad) + "\" y=\"18\" font-size=\"14\">" + xml(title) + "</text>\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const double y = 30 + 22.0 * static_cast<double>(i);
    s += "<rect x=\"" + coord(kPad) + "\" y=\"" + coord(y) + "\" width=\"14\" height=\"10\" fill=\"" + kColours[i % 8] + "\"/>";
    s += "<text x=\"" + coord(kPad + 20) + "\" y=\"" + coord(y + 9) + "\">" + xml(runs[i].name) + "</text>\n";
  }
  if (panels == 0) s += "<text x=\"" + coord(kPad) + "\" y=\"" + coord(legend + 20) + "\">no metrics recorded yet</text>\n";
  int p = 0;
  for (const auto& name : names) {
    const double x0 = kPad + (p % kColumns) * (kPanelW + kPad), y0 = legend + (p / kColumns) * (kPanelH + kPad);
    ++p;
    double emin = INFINITY, emax = -INFINITY, vmin = INFINITY, vmax = -INFINITY;
    for (const auto& r : runs)
      for (std::size_t i = 0; i < r.records.size(); ++i) {
        auto it = r.records[i].find(name);
        if (it == r.records[i].end() || !std::isfinite(it->second)) continue;
        auto e = r.records[i].find("epoch");
        const double epoch = e != r.records[i].end() ? e->second : static_cast<double>(i + 1);
        emin = std::min(emin, epoch), emax = std::max(emax, epoch);
        vmin = std::min(vmin, it->second), vmax = std::max(vmax, it->second);
      }
    s += "<g>\n<rect x=\"" + coord(x0) + "\" y=\"" + coord(y0) + "\" width=\"" + coord(kPanelW) + "\" height=\"" + coord(kPanelH) +
         "\" fill=\"none\" stroke=\"#ccc\"/>\n";
    s += "<text x=\"" + coord(x0 + 6) + "\" y=\"" + coord(y0 + 16) + "\" font-weight=\"bold\">" + xml(name) + "</text>\n";
    if (!std::isfinite(vmin)) {
      s += "<text x=\"" + coord(x0 + 6) + "\" y=\"" + coord(y0 + 40) + "\">no finite value</text>\n</g>\n";
      continue;
    }
    if (emax == emin) emin -= 0.5, emax += 0.5;
    if (vmax == vmin) vmin -= std::max(1e-12, std::abs(vmin) * 0.05), vmax += std::max(1e-12, std::abs(vmax) * 0.05);
    const double px0 = x0 + kLeft, px1 = x0 + kPanelW - 8, py0 = y0 + kPanelH - kBottom, py1 = y0 + kTop;
    const auto X = [&](double e) { return px0 + (e - emin) / (emax - emin) * (px1 - px0); };
    const auto Y = [&](double v) { return py0 - (v - vmin) / (vmax - vmin) * (py0 - py1); };
    s += "<line x1=\"" + coord(px0) + "\" y1=\"" + coord(py0) + "\" x2=\"" + coord(px1) + "\" y2=\"" + coord(py0) + "\" stroke=\"#888\"/>";
    s += "<line x1=\"" + coord(px0) + "\" y1=\"" + coord(py0) + "\" x2=\"" + coord(px0) + "\" y2=\"" + coord(py1) + "\" stroke=\"#888\"/>\n";
    s += "<text x=\"" + coord(px0 - 4) + "\" y=\"" + coord(py0) + "\" text-anchor=\"end\">" + num(vmin) + "</text>";
    s += "<text x=\"" + coord(px0 - 4) + "\" y=\"" + coord(py1 + 8) + "\" text-anchor=\"end\">" + num(vmax) + "</text>\n";
    s += "<text x=\"" + coord(px0) + "\" y=\"" + coord(py0 + 14) + "\">" + num(emin) + "</text>";
    s += "<text x=\"" + coord(px1) + "\" y=\"" + coord(py0 + 14) + "\" text-anchor=\"end\">epoch " + num(emax) + "</text>\n";
    for (std::size_t i = 0; i < runs.size(); ++i) {
      std::string points;
      int count = 0;
      for (std::size_t k = 0; k < runs[i].records.size(); ++k) {
        const auto& rec = runs[i].records[k];
        auto it = rec.find(name);
        if (it == rec.end() || !std::isfinite(it->second)) continue;
        auto e = rec.find("epoch");
        const double epoch = e != rec.end() ? e->second : static_cast<double>(k + 1);
        points += (count++ ? " " : "") + coord(X(epoch)) + "," + coord(Y(it->second));
      }
      if (count == 1) {
        const auto comma = points.find(',');
        s += "<circle cx=\"" + points.substr(0, comma) + "\" cy=\"" + points.substr(comma + 1) + "\" r=\"3\" fill=\"" + kColours[i % 8] + "\"/>\n";
      } else if (count > 1) {
        s += "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"" + std::string(kColours[i % 8]) + "\" points=\"" + points + "\"/>\n";
      }
    }
    s += "</g>\n";
  }
  return s + "</svg>\n";
}

bool write_curves(const std::string& run_dir) {
  const std::filesystem::path dir(run_dir);
  CurveRun run{dir.filename().string(), read_metrics((dir / "metrics.jsonl").string())};
  if (run.records.empty()) return false;
  write_file_atomically((dir / "curves.svg").string(), curves_svg({run}, run.name + ": metrics per epoch"));
  return true;
}

}  // namespace umrflow
