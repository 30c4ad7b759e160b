// `eval.subset_report`: Dice and HD95 of every modality subset, collected over
// the cases of an evaluation run and written as the paper's Table 1 layout.
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <tuple>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "brats/brats.h"
#include "builtin.h"
#include "eval/raster.h"
#include "eval/seg_metrics.h"
#include "eval/sod_metrics.h"
#include "io/nifti.h"
#include "umrflow/declare.h"
#include "umrflow/node.h"
#include "umrflow/files.h"
#include "umrflow/rank_sync.h"

namespace umrflow::nodes {

namespace {

namespace fs = std::filesystem;

struct Row {
  std::int64_t subset;
  std::string case_id;
  std::vector<double> dice, hd95;  // per region, in label channel order
  std::int64_t index = -1;         // the case's sample index in the pass
};

// Rows as bytes for a gather across ranks (the same machine type on every rank).
template <typename T>
void put(std::string& b, const T& v) {
  b.append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <typename T>
T take(const std::string& b, std::size_t& at) {
  if (at + sizeof(T) > b.size()) throw std::runtime_error("eval.subset_report: a rank's rows arrived cut short");
  T v;
  std::memcpy(&v, b.data() + at, sizeof v);
  at += sizeof v;
  return v;
}

std::string rows_to_bytes(const std::vector<Row>& rows) {
  std::string b;
  put<std::uint64_t>(b, rows.size());
  for (const auto& r : rows) {
    put(b, r.subset);
    put(b, r.index);
    put<std::uint64_t>(b, r.case_id.size());
    b += r.case_id;
    put<std::uint64_t>(b, r.dice.size());
    for (double v : r.dice) put(b, v);
    for (double v : r.hd95) put(b, v);
  }
  return b;
}

std::vector<Row> rows_from_bytes(const std::string& b) {
  std::size_t at = 0;
  std::vector<Row> rows(take<std::uint64_t>(b, at));
  for (auto& r : rows) {
    r.subset = take<std::int64_t>(b, at);
    r.index = take<std::int64_t>(b, at);
    const auto n = take<std::uint64_t>(b, at);
    if (at + n > b.size()) throw std::runtime_error("eval.subset_report: a rank's rows arrived cut short");
    r.case_id = b.substr(at, n);
    at += n;
    const auto regions = take<std::uint64_t>(b, at);
    for (std::uint64_t k = 0; k < regions; ++k) r.dice.push_back(take<double>(b, at));
    for (std::uint64_t k = 0; k < regions; ++k) r.hd95.push_back(take<double>(b, at));
  }
  return rows;
}

std::string display_name(std::string m) {
  if (!m.empty()) m[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(m[0])));
  return m;
}

double mean_of(const std::vector<double>& v, double* sd = nullptr) {
  double s = 0;
  int n = 0;
  for (double x : v)
    if (!std::isnan(x)) {
      s += x;
      ++n;
    }
  const double m = n ? s / n : std::nan("");
  if (sd) {
    double q = 0;
    for (double x : v)
      if (!std::isnan(x)) q += (x - m) * (x - m);
    *sd = n ? std::sqrt(q / n) : std::nan("");
  }
  return m;
}

std::string fmt(double v, int digits = 2) {
  if (std::isnan(v)) return "n/a";
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

class SubsetReport final : public StepNode {
 public:
  static void declare(Declaration<SubsetReport>& d) {
    d.type("eval.subset_report", NodeKind::step,
           "Dice (MONAI or RFNet rule) and HD95 per modality subset and case; at the end writes report.md/.csv/.json, "
           "per_case.csv, dice_boxplot.svg and .png (and NIfTI predictions) into the run directory.");
    d.input(PortSpec{"pred", {{"pred", 5, "logits (S*B, R, X, Y, Z), subset-major"}}, "the network's output for all subsets"});
    d.input(PortSpec{"label", {{"label", 5, "(B, R, X, Y, Z)"}}, "ground truth"});
    d.input(PortSpec{"present", {{"present", 2, "(S, M)"}}, "subset masks (modality.subsets)"});
    d.input(PortSpec{"affine", {{"affine", 3, "(B, 4, 4)"}}, "voxel-to-world matrices, for NIfTI predictions", true});
    // Predictions are written by finish() on each rank, so with them every
    // rank evaluates every case; without, ranks share the cases and merge.
    d.sharding_for([](const Params& p) { return p.get_bool("predictions") ? Sharding::whole : Sharding::gathers; });
    d.output({"dice", 3, "float64 (S, B, R), NaN where left out"});
    d.output({"mean_dice", 0, "mean of `dice` over subsets, cases and regions (absent when all are left out); for train.validate"});
    d.summary_figure({"average_*", 0, "the report's Average row: Dice % of each `columns` region, mean over the subsets"});
    d.summary_figure({"std_dev_*", 0, "the report's Std Dev row: population sd over the subsets of each region's Dice %"});
    d.param(&SubsetReport::modalities_, param::texts("modalities", std::vector<std::string>{"flair", "t1ce", "t1", "t2"},
                                                     "channel names, for the row labels"));
    d.param(&SubsetReport::regions_, param::texts("regions", std::vector<std::string>{"TC", "WT", "ET"}, "label channels, in order"));
    d.param(&SubsetReport::columns_, param::texts("columns", std::vector<std::string>{"WT", "TC", "ET"},
                                                  "regions in the report's column order (the paper's)"));
    d.param(&SubsetReport::dice_, param::choice("dice", "monai", {"monai", "rfnet"},
                                                "monai: empty ground truth left out of the mean; rfnet: both empty scores 1"));
    d.param(&SubsetReport::hd95_, param::boolean("hd95", true, "also compute the 95% Hausdorff distance (voxels)"));
    d.param(&SubsetReport::threshold_, param::number("threshold", 0.5, "sigmoid(logit) above this is foreground").range(0, 1));
    d.param(&SubsetReport::predictions_,
            param::boolean("predictions", false,
                           "write every subset's prediction as NIfTI into predictions/ (needs the `affine` port): a BraTS "
                           "label map (0, 1, 2, 4) when the regions are BraTS regions"));
  }
  void setup() {
    rfnet_ = dice_ == "rfnet";
    brats_regions_ = std::all_of(regions_.begin(), regions_.end(), [](const std::string& r) {
      return std::find(brats::region_names().begin(), brats::region_names().end(), r) != brats::region_names().end();
    });
    for (const auto& c : columns_) {
      auto it = std::find(regions_.begin(), regions_.end(), c);
      if (it == regions_.end()) throw std::invalid_argument("columns: '" + c + "' is not one of the regions");
      column_index_.push_back(it - regions_.begin());
    }
  }

  Packet run(const std::vector<Packet>& in, Context&) override {
    const torch::Tensor logits = metrics::require_finite_output(in.at(0).at("pred").detach().to(torch::kCPU).to(torch::kFloat32), "pred");
    const torch::Tensor label = in.at(1).at("label").to(torch::kCPU).to(torch::kBool);
    const torch::Tensor present = in.at(2).at("present").to(torch::kCPU).to(torch::kLong);
    const std::int64_t subsets = present.size(0), cases = label.size(0), regions = label.size(1);
    if (logits.size(0) != subsets * cases || logits.size(1) != regions || regions != static_cast<std::int64_t>(regions_.size()))
      throw std::runtime_error("pred " + c10::str(logits.sizes()) + " does not hold " + std::to_string(subsets) + " subsets of " +
                               std::to_string(cases) + " cases with the " + std::to_string(regions_.size()) + " regions of label " +
                               c10::str(label.sizes()));
    if (masks_.empty())
      for (std::int64_t s = 0; s < subsets; ++s) {
        std::vector<std::int64_t> m;
        for (std::int64_t c = 0; c < present.size(1); ++c) m.push_back(present[s][c].item<std::int64_t>());
        masks_.push_back(m);
      }
    const torch::Tensor pred = torch::sigmoid(logits) > threshold_;
    std::vector<std::string> names;
    std::vector<std::int64_t> indices;
    for (const auto& m : in.at(1).samples) {
      names.push_back(m.id);
      indices.push_back(m.index);
    }
    Packet out;
    torch::Tensor dice = torch::full({subsets, cases, regions}, std::nan(""), torch::kFloat64);
    for (std::int64_t s = 0; s < subsets; ++s)
      for (std::int64_t b = 0; b < cases; ++b) {
        const bool named = b < static_cast<std::int64_t>(names.size());
        Row row{s, named ? names[b] : "case" + std::to_string(b), {}, {}, named ? indices[b] : -1};
        for (std::int64_t r = 0; r < regions; ++r) {
          const torch::Tensor p = pred[s * cases + b][r], g = label[b][r];
          row.dice.push_back(rfnet_ ? metrics::dice_rfnet(p, g) : metrics::dice_monai(p, g));
          row.hd95.push_back(hd95_ ? metrics::hd95(p, g) : std::nan(""));
          dice[s][b][r] = row.dice.back();
        }
        rows_.push_back(row);
        if (predictions_ && in.size() > 3 && !in.at(3).tensors.empty()) pending_.push_back({row.case_id, s, pred[s * cases + b].clone(), in.at(3).at("affine")[b].clone()});
      }
    out.tensors["dice"] = dice;
    const torch::Tensor mean = dice.nanmean();
    if (std::isfinite(mean.item<double>())) out.tensors["mean_dice"] = mean.to(torch::kFloat32);
    return out;
  }

  /// Writes the report; returns the Average and Std Dev rows (Dice %) as
  /// `average_<region>` and `std_dev_<region>`, what a sweep tabulates.
  std::map<std::string, double> finish(const std::string& run_dir) override {
    gather_rows();
    if (rows_.empty()) return {};
    const fs::path dir = run_dir;
    const std::int64_t subsets = static_cast<std::int64_t>(masks_.size());
    const std::size_t ncol = columns_.size();
    // Per subset, the mean over cases of each region (NaN entries left out).
    std::vector<std::vector<double>> dice(subsets, std::vector<double>(ncol)), hd(subsets, std::vector<double>(ncol));
    for (std::int64_t s = 0; s < subsets; ++s)
      for (std::size_t c = 0; c < ncol; ++c) {
        std::vector<double> d, h;
        for (const auto& r : rows_)
          if (r.subset == s) {
            d.push_back(r.dice[column_index_[c]]);
            h.push_back(r.hd95[column_index_[c]]);
          }
        dice[s][c] = 100.0 * mean_of(d);
        hd[s][c] = mean_of(h);
      }
    std::vector<double> avg(ncol), sd(ncol), hd_avg(ncol);
    for (std::size_t c = 0; c < ncol; ++c) {
      std::vector<double> col, hcol;
      for (std::int64_t s = 0; s < subsets; ++s) {
        col.push_back(dice[s][c]);
        hcol.push_back(hd[s][c]);
      }
      avg[c] = mean_of(col, &sd[c]);
      hd_avg[c] = mean_of(hcol);
    }
    std::set<std::string> cases;
    for (const auto& r : rows_) cases.insert(r.case_id);
    std::ostringstream md, csv, json;
    md << "Dice (%) per modality subset over " << cases.size() << " case(s); " << (rfnet_ ? "RFNet rule (empty with empty = 1)" : "MONAI rule (empty ground truth left out)")
       << "; Average and Std Dev over the " << subsets << " subsets (population).\n\n| present |";
    csv << "present";
    for (const auto& c : columns_) {
      md << " " << c << " |";
      csv << ",dice_" << c;
    }
    if (hd95_) {
      for (const auto& c : columns_) {
        md << " HD95 " << c << " |";
        csv << ",hd95_" << c;
      }
    }
    md << "\n|---|";
    for (std::size_t k = 0; k < ncol * (hd95_ ? 2 : 1); ++k) md << "---|";
    md << "\n";
    csv << "\n";
    json << "{\n  \"cases\": " << cases.size() << ",\n  \"dice_rule\": \"" << (rfnet_ ? "rfnet" : "monai") << "\",\n  \"subsets\": [\n";
    for (std::int64_t s = 0; s < subsets; ++s) {
      const std::string name = subset_name(s);
      md << "| " << name << " |";
      csv << name;
      json << "    {\"present\": " << json_quoted(name);
      for (std::size_t c = 0; c < ncol; ++c) {
        md << " " << fmt(dice[s][c]) << " |";
        csv << "," << fmt(dice[s][c], 4);
        json << ", \"dice_" << columns_[c] << "\": " << json_number(dice[s][c]);
      }
      if (hd95_)
        for (std::size_t c = 0; c < ncol; ++c) {
          md << " " << fmt(hd[s][c]) << " |";
          csv << "," << fmt(hd[s][c], 4);
          json << ", \"hd95_" << columns_[c] << "\": " << json_number(hd[s][c]);
        }
      md << "\n";
      csv << "\n";
      json << "}" << (s + 1 < subsets ? "," : "") << "\n";
    }
    md << "| **Average** |";
    csv << "Average";
    for (std::size_t c = 0; c < ncol; ++c) {
      md << " **" << fmt(avg[c]) << "** |";
      csv << "," << fmt(avg[c], 4);
    }
    if (hd95_)
      for (std::size_t c = 0; c < ncol; ++c) {
        md << " **" << fmt(hd_avg[c]) << "** |";
        csv << "," << fmt(hd_avg[c], 4);
      }
    md << "\n| Std Dev |";
    csv << "\nStd Dev";
    for (std::size_t c = 0; c < ncol; ++c) {
      md << " " << fmt(sd[c]) << " |";
      csv << "," << fmt(sd[c], 4);
    }
    if (hd95_)
      for (std::size_t c = 0; c < ncol; ++c) {
        md << " |";
        csv << ",";
      }
    md << "\n";
    csv << "\n";
    json << "  ],\n  \"average\": {";
    for (std::size_t c = 0; c < ncol; ++c) json << (c ? ", " : "") << "\"dice_" << columns_[c] << "\": " << json_number(avg[c]);
    json << "},\n  \"std_dev\": {";
    for (std::size_t c = 0; c < ncol; ++c) json << (c ? ", " : "") << "\"dice_" << columns_[c] << "\": " << json_number(sd[c]);
    json << "}\n}\n";
    write(dir / "report.md", md.str());
    write(dir / "report.csv", csv.str());
    write(dir / "report.json", json.str());
    std::ostringstream per_case;
    per_case << "present,case";
    for (const auto& r : regions_) per_case << ",dice_" << r;
    for (const auto& r : regions_) per_case << ",hd95_" << r;
    per_case << "\n";
    for (const auto& r : rows_) {
      per_case << subset_name(r.subset) << "," << r.case_id;
      for (double v : r.dice) per_case << "," << fmt(v, 6);
      for (double v : r.hd95) per_case << "," << fmt(v, 4);
      per_case << "\n";
    }
    write(dir / "per_case.csv", per_case.str());
    write(dir / "dice_boxplot.svg", boxplot(dice));
    write(dir / "dice_boxplot.png", boxplot_png(dice));
    if (!pending_.empty()) {
      fs::create_directories(dir / "predictions");
      for (const auto& p : pending_) {
        const std::string name = p.case_id + "_" + file_name(p.subset) + ".nii.gz";
        io::Affine affine{};
        const torch::Tensor a = p.affine.to(torch::kFloat64).contiguous();
        std::copy(a.data_ptr<double>(), a.data_ptr<double>() + 16, affine.begin());
        // One file per case and subset: BraTS region channels as a BraTS label map (0, 1, 2, 4, what
        // `umrflow predict` writes); other channels as labels r + 1, nested regions painted largest first.
        torch::Tensor labels;
        if (brats_regions_) {
          labels = brats::regions_to_labels(p.mask, regions_);
        } else {
          std::vector<std::int64_t> order(p.mask.size(0));
          std::iota(order.begin(), order.end(), 0);
          std::sort(order.begin(), order.end(), [&](auto a, auto b) { return p.mask[a].sum().template item<std::int64_t>() > p.mask[b].sum().template item<std::int64_t>(); });
          labels = torch::zeros(p.mask[0].sizes(), torch::kUInt8);
          for (std::int64_t r : order) labels.masked_fill_(p.mask[r], static_cast<std::uint8_t>(r + 1));
        }
        io::write_nifti((dir / "predictions" / name).string(), labels, affine, io::dtype::uint8);
      }
    }
    std::printf("%s", md.str().c_str());
    std::map<std::string, double> figures;
    for (std::size_t c = 0; c < ncol; ++c) {
      figures["average_" + columns_[c]] = avg[c];
      figures["std_dev_" + columns_[c]] = sd[c];
    }
    return figures;
  }

 private:
  struct Pending {
    std::string case_id;
    std::int64_t subset;
    torch::Tensor mask, affine;
  };

  static std::string json_number(double v) { return std::isnan(v) ? "null" : fmt(v, 4); }
  static void write(const fs::path& path, const std::string& text) { write_file_atomically(path.string(), text); }
  std::string subset_name(std::int64_t s) const {
    std::string out;
    for (std::size_t c = 0; c < masks_[s].size(); ++c)
      if (masks_[s][c]) out += (out.empty() ? "" : "+") + display_name(c < modalities_.size() ? modalities_[c] : "m" + std::to_string(c));
    return out;
  }
  std::string file_name(std::int64_t s) const {
    std::string n = subset_name(s);
    std::replace(n.begin(), n.end(), '+', '-');
    return n;
  }

  /// One box of the box plot: a region's per-subset mean Dice, sorted, with
  /// its quartiles (linear interpolation between order statistics).
  struct Box {
    std::vector<double> values;
    double q25 = 0, median = 0, q75 = 0;
  };
  std::vector<Box> boxes(const std::vector<std::vector<double>>& dice) const {
    std::vector<Box> out(columns_.size());
    for (std::size_t c = 0; c < columns_.size(); ++c) {
      auto& v = out[c].values;
      for (const auto& row : dice)
        if (!std::isnan(row[c])) v.push_back(row[c]);
      if (v.empty()) continue;
      std::sort(v.begin(), v.end());
      auto q = [&](double f) {
        const double pos = f * (v.size() - 1);
        const std::size_t lo = static_cast<std::size_t>(pos);
        const std::size_t hi = std::min(lo + 1, v.size() - 1);
        return v[lo] + (v[hi] - v[lo]) * (pos - lo);
      };
      out[c].q25 = q(0.25), out[c].median = q(0.5), out[c].q75 = q(0.75);
    }
    return out;
  }

  /// Box plot (SVG) of the per-subset mean Dice for each column: median, quartiles,
  /// whiskers at the extremes, and the subsets as dots.
  std::string boxplot(const std::vector<std::vector<double>>& dice) const {
    const int w = 120 * static_cast<int>(columns_.size()) + 80, h = 320;
    std::ostringstream s;
    s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    s << "<text x=\"10\" y=\"16\">Dice (%) of the " << dice.size() << " modality subsets per region</text>\n";
    auto y_of = [&](double v) { return 290.0 - 2.5 * v; };
    for (int t = 0; t <= 100; t += 20)
      s << "<line x1=\"50\" x2=\"" << w - 10 << "\" y1=\"" << y_of(t) << "\" y2=\"" << y_of(t) << "\" stroke=\"#ddd\"/><text x=\"20\" y=\"" << y_of(t) + 4
        << "\">" << t << "</text>\n";
    const auto bx = boxes(dice);
    for (std::size_t c = 0; c < columns_.size(); ++c) {
      const auto& v = bx[c].values;
      const double x = 90.0 + 120.0 * c;
      s << "<text x=\"" << x - 10 << "\" y=\"308\">" << columns_[c] << "</text>\n";
      if (v.empty()) continue;
      s << "<line x1=\"" << x << "\" x2=\"" << x << "\" y1=\"" << y_of(v.front()) << "\" y2=\"" << y_of(v.back()) << "\" stroke=\"black\"/>\n";
      s << "<rect x=\"" << x - 25 << "\" y=\"" << y_of(bx[c].q75) << "\" width=\"50\" height=\"" << y_of(bx[c].q25) - y_of(bx[c].q75)
        << "\" fill=\"#9cf\" stroke=\"black\"/>\n";
      s << "<line x1=\"" << x - 25 << "\" x2=\"" << x + 25 << "\" y1=\"" << y_of(bx[c].median) << "\" y2=\"" << y_of(bx[c].median)
        << "\" stroke=\"black\" stroke-width=\"2\"/>\n";
      for (double d : v) s << "<circle cx=\"" << x + 35 << "\" cy=\"" << y_of(d) << "\" r=\"2\" fill=\"#c33\"/>\n";
    }
    s << "</svg>\n";
    return s.str();
  }

  /// The same box plot as a PNG, pixel for pixel on the SVG's coordinates.
  std::string boxplot_png(const std::vector<std::vector<double>>& dice) const {
    const int w = 120 * static_cast<int>(columns_.size()) + 80, h = 320;
    const raster::Rgb black{0, 0, 0}, grid{221, 221, 221}, fill{153, 204, 255}, dot{204, 51, 51};
    raster::Canvas img(w, h, {255, 255, 255});
    auto y_of = [&](double v) { return static_cast<int>(std::lround(290.0 - 2.5 * v)); };
    img.text(10, 6, "Dice (%) of the " + std::to_string(dice.size()) + " modality subsets per region", black);
    for (int t = 0; t <= 100; t += 20) {
      img.hline(50, w - 10, y_of(t), grid);
      img.text(20, y_of(t) - 3, std::to_string(t), black);
    }
    const auto bx = boxes(dice);
    for (std::size_t c = 0; c < columns_.size(); ++c) {
      const auto& v = bx[c].values;
      const int x = 90 + 120 * static_cast<int>(c);
      img.text(x - raster::Canvas::text_width(columns_[c]) / 2, 301, columns_[c], black);
      if (v.empty()) continue;
      img.vline(x, y_of(v.back()), y_of(v.front()) + 1, black);
      img.fill(x - 25, y_of(bx[c].q75), x + 25, y_of(bx[c].q25) + 1, fill);
      img.outline(x - 25, y_of(bx[c].q75), x + 25, y_of(bx[c].q25) + 1, black);
      img.hline(x - 25, x + 25, y_of(bx[c].median), black, 2);
      for (double d : v) img.dot(x + 35, y_of(d), 2, dot);
    }
    return img.png();
  }

  std::vector<std::string> modalities_, regions_, columns_;
  std::vector<std::size_t> column_index_;
  std::string dice_;
  bool rfnet_ = false, hd95_ = false;
  double threshold_ = 0;
  bool predictions_ = false;
  bool brats_regions_ = false;
  std::vector<std::vector<std::int64_t>> masks_;
  std::vector<Row> rows_;

  /// In a sharded pass, every rank's rows, sorted by case (sample index) and
  /// subset (the order of one process with batches of one), each (case,
  /// subset) once (a share is padded with repeats). Otherwise unchanged.
  void gather_rows() {
    const RankSync* sync = rank_sync();
    if (!sync || !sync->gather) return;
    std::vector<Row> all;
    for (const auto& bytes : sync->gather(rows_to_bytes(rows_))) {
      auto part = rows_from_bytes(bytes);
      all.insert(all.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
    }
    rows_ = std::move(all);
    std::stable_sort(rows_.begin(), rows_.end(),
                     [](const Row& a, const Row& b) { return std::tie(a.index, a.subset) < std::tie(b.index, b.subset); });
    rows_.erase(std::unique(rows_.begin(), rows_.end(),
                            [](const Row& a, const Row& b) { return a.index >= 0 && a.index == b.index && a.subset == b.subset; }),
                rows_.end());
  }
  std::vector<Pending> pending_;
};

}  // namespace

void register_eval_nodes(Registry& registry) {
  add_nodes<SubsetReport>(registry);
  register_sod_report_node(registry);
  register_seg_report_node(registry);
}

}  // namespace umrflow::nodes
