// `eval.sod_report`: salient object detection scores of every modality subset
// (S-measure, max and mean F, max and mean E, MAE; eval/sod_metrics.h), over
// the images of an evaluation run, written in the layout of the paper's
// Table 2: one row per subset, single modalities first ("RGB", "Depth", then
// "RGB+Depth"), then the Average and the Std Dev (population) over the rows.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <map>
#include <numeric>
#include <sstream>
#include <utility>

#include "builtin.h"
#include "eval/sod_metrics.h"
#include "image2d/image_io.h"
#include "umrflow/declare.h"
#include "umrflow/files.h"
#include "umrflow/node.h"

namespace umrflow::nodes {

namespace {

namespace fs = std::filesystem;

struct Metric {
  const char* key;
  const char* title;
  double metrics::SodScores::*field;
};
const Metric kMetrics[] = {{"s_measure", "S-measure", &metrics::SodScores::s_measure}, {"max_f", "max F", &metrics::SodScores::max_f},
                           {"mean_f", "mean F", &metrics::SodScores::mean_f},          {"max_e", "max E", &metrics::SodScores::max_e},
                           {"mean_e", "mean E", &metrics::SodScores::mean_e},          {"mae", "MAE", &metrics::SodScores::mae}};

std::string fixed(double v, int digits) {
  if (std::isnan(v)) return "n/a";
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

class SodReport final : public StepNode {
 public:
  static void declare(Declaration<SodReport>& d) {
    d.type("eval.sod_report", NodeKind::step,
           "S-measure, F-measure, E-measure and MAE per modality subset; at the end writes report.md/.csv/.json and per_image.csv "
           "(Table 2 layout: single modalities, both, Average, Std Dev) and, on request, the saliency maps as PNG.");
    d.sharding(Sharding::whole);
    d.input(PortSpec{"pred", {{"pred", 4, "logits (S*B, 1, H, W), subset-major"}}, "the network's output for all subsets"});
    d.input(PortSpec{"label", {{"label", 4, "(B, 1, H, W) in [0, 1]"}}, "ground truth"});
    d.input(PortSpec{"present", {{"present", 2, "(S, M)"}}, "subset masks (modality.subsets)"});
    d.output({"s_measure", 3, "float64 (S, B, 1): each image's S-measure"});
    d.output({"mean_s_measure", 0, "mean of `s_measure`; for train.validate"});
    d.summary_figure({"average_*", 0, "the report's Average row: each metric's mean over the subsets"});
    d.summary_figure({"std_dev_*", 0, "the report's Std Dev row: each metric's population sd over the subsets"});
    d.param(&SodReport::modalities_, param::texts("modalities", std::vector<std::string>{"RGB", "Depth"}, "modality names, for the row labels"));
    d.param(&SodReport::style_, param::choice("s_measure", "sslsod", {"sslsod", "pysod"},
                                              "S-measure arithmetic: SSLSOD's (the configuration UniMRSeg names) or PySOD's (MATLAB's)"));
    d.param(&SodReport::normalize_,
            param::boolean("normalize", true, "min-max normalise each saliency map first, as both references do with a saved map"));
    d.param(&SodReport::maps_, param::boolean("maps", false, "write every subset's saliency map as an 8-bit PNG into maps/<subset>/"));
  }
  void setup() { pysod_ = style_ == "pysod"; }

  Packet run(const std::vector<Packet>& in, Context&) override {
    const torch::Tensor prob = torch::sigmoid(in.at(0).at("pred").detach().to(torch::kCPU).to(torch::kFloat64));
    const torch::Tensor label = in.at(1).at("label").to(torch::kCPU).to(torch::kFloat64);
    const torch::Tensor present = in.at(2).at("present").to(torch::kCPU).to(torch::kLong).contiguous();
    const std::int64_t subsets = present.size(0), images = label.size(0);
    if (label.size(1) != 1 || prob.size(0) != subsets * images || prob.size(1) != 1 || prob.sizes().slice(2) != label.sizes().slice(2))
      throw std::runtime_error("pred " + c10::str(prob.sizes()) + " does not hold " + std::to_string(subsets) + " subsets of the " +
                               std::to_string(images) + " one-channel maps of label " + c10::str(label.sizes()));
    if (present.size(1) != static_cast<std::int64_t>(modalities_.size()))
      throw std::runtime_error("`present` has " + std::to_string(present.size(1)) + " modalities; parameter modalities names " +
                               std::to_string(modalities_.size()));
    std::vector<std::vector<std::int64_t>> masks;
    for (std::int64_t s = 0; s < subsets; ++s)
      masks.emplace_back(present[s].data_ptr<std::int64_t>(), present[s].data_ptr<std::int64_t>() + present.size(1));
    if (masks_.empty()) {
      masks_ = masks;
      scores_.assign(subsets, metrics::SodAccumulator(pysod_ ? metrics::SmeasureStyle::pysod : metrics::SmeasureStyle::sslsod));
    } else if (masks != masks_) {
      // Each row of the report collects one subset: every batch must list the same subsets in the same order.
      throw std::runtime_error("`present` lists other subsets than in the first batch (use modality.subsets without from_tag)");
    }
    torch::Tensor sm = torch::empty({subsets, images, 1}, torch::kFloat64);
    for (std::int64_t s = 0; s < subsets; ++s)
      for (std::int64_t b = 0; b < images; ++b) {
        torch::Tensor p = prob[s * images + b][0], g = label[b][0];
        if (normalize_) p = metrics::minmax_normalize(p);
        const metrics::SodAccumulator::ImageScores own = scores_[s].add(p, g);
        const std::string id = b < static_cast<std::int64_t>(in.at(1).samples.size()) ? in.at(1).samples[b].id : "image" + std::to_string(seen_ + b);
        rows_.push_back({static_cast<std::size_t>(s), id, own.s_measure, own.mae});
        sm[s][b][0] = rows_.back().s_measure;
        if (maps_) maps_pending_.push_back({static_cast<std::size_t>(s), id, (p * 255.0).round().clamp(0, 255).to(torch::kUInt8).contiguous()});
      }
    seen_ += images;
    Packet out;
    out.tensors["s_measure"] = sm;
    if (sm.numel() > 0) out.tensors["mean_s_measure"] = sm.mean().to(torch::kFloat32);
    return out;
  }

  std::map<std::string, double> finish(const std::string& run_dir) override {
    if (masks_.empty()) return {};
    // Table 2's order: fewer modalities first, then by the first present one.
    std::vector<std::size_t> order(masks_.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const auto na = std::accumulate(masks_[a].begin(), masks_[a].end(), std::int64_t{0});
      const auto nb = std::accumulate(masks_[b].begin(), masks_[b].end(), std::int64_t{0});
      if (na != nb) return na < nb;
      return std::vector<std::int64_t>(masks_[a].rbegin(), masks_[a].rend()) < std::vector<std::int64_t>(masks_[b].rbegin(), masks_[b].rend());
    });
    std::vector<metrics::SodScores> result;
    for (auto& acc : scores_) result.push_back(acc.result());
    std::map<std::string, double> avg, sd;
    for (const Metric& m : kMetrics) {
      double sum = 0, sq = 0;
      for (const auto& r : result) sum += r.*m.field;
      const double mean = sum / static_cast<double>(result.size());
      for (const auto& r : result) sq += (r.*m.field - mean) * (r.*m.field - mean);
      avg[m.key] = mean;
      sd[m.key] = std::sqrt(sq / static_cast<double>(result.size()));
    }
    std::ostringstream md, csv, json;
    md << "Saliency per modality subset over " << result.front().images << " image(s); S-measure alpha 0.5 ("
       << (pysod_ ? "PySOD" : "SSLSOD") << " arithmetic), F with beta^2 0.3; Average and Std Dev over the " << result.size()
       << " subsets (population).\n\n| input |";
    csv << "input";
    json << "{\n  \"images\": " << result.front().images << ",\n  \"s_measure_style\": \"" << (pysod_ ? "pysod" : "sslsod") << "\",\n  \"subsets\": [\n";
    for (const Metric& m : kMetrics) {
      md << " " << m.title << " |";
      csv << "," << m.key;
    }
    md << "\n|---|";
    for (std::size_t k = 0; k < std::size(kMetrics); ++k) md << "---|";
    md << "\n";
    csv << "\n";
    for (std::size_t k = 0; k < order.size(); ++k) {
      const std::size_t s = order[k];
      md << "| " << name(s) << " |";
      csv << name(s);
      json << "    {\"input\": " << json_quoted(name(s));
      for (const Metric& m : kMetrics) {
        md << " " << fixed(result[s].*m.field, 3) << " |";
        csv << "," << fixed(result[s].*m.field, 6);
        json << ", \"" << m.key << "\": " << number(result[s].*m.field);
      }
      md << "\n";
      csv << "\n";
      json << "}" << (k + 1 < order.size() ? "," : "") << "\n";
    }
    md << "| **Average** |";
    csv << "Average";
    for (const Metric& m : kMetrics) {
      md << " **" << fixed(avg[m.key], 3) << "** |";
      csv << "," << fixed(avg[m.key], 6);
    }
    md << "\n| Std Dev |";
    csv << "\nStd Dev";
    for (const Metric& m : kMetrics) {
      md << " " << fixed(sd[m.key], 3) << " |";
      csv << "," << fixed(sd[m.key], 6);
    }
    md << "\n";
    csv << "\n";
    json << "  ],\n  \"average\": {";
    bool first = true;
    for (const Metric& m : kMetrics) json << (std::exchange(first, false) ? "" : ", ") << "\"" << m.key << "\": " << number(avg[m.key]);
    json << "},\n  \"std_dev\": {";
    first = true;
    for (const Metric& m : kMetrics) json << (std::exchange(first, false) ? "" : ", ") << "\"" << m.key << "\": " << number(sd[m.key]);
    json << "}\n}\n";
    const fs::path dir = run_dir;
    write_file_atomically((dir / "report.md").string(), md.str());
    write_file_atomically((dir / "report.csv").string(), csv.str());
    write_file_atomically((dir / "report.json").string(), json.str());
    std::ostringstream per_image;
    per_image << "input,image,s_measure,mae\n";
    for (const auto& r : rows_) per_image << name(r.subset) << "," << r.id << "," << fixed(r.s_measure, 6) << "," << fixed(r.mae, 6) << "\n";
    write_file_atomically((dir / "per_image.csv").string(), per_image.str());
    for (const auto& m : maps_pending_) {
      const fs::path folder = dir / "maps" / name(m.subset);
      fs::create_directories(folder);
      image2d::Image img{static_cast<int>(m.map.size(1)), static_cast<int>(m.map.size(0)), 1,
                         std::vector<std::uint8_t>(m.map.data_ptr<std::uint8_t>(), m.map.data_ptr<std::uint8_t>() + m.map.numel())};
      // Named after the sample id with its extension dropped and folders joined
      // by '_', so that equal file names from different folders stay apart.
      std::string stem = fs::path(m.id).replace_extension().string();
      std::replace(stem.begin(), stem.end(), '/', '_');
      image2d::write_png((folder / (stem + ".png")).string(), img);
    }
    std::printf("%s", md.str().c_str());
    std::map<std::string, double> figures;
    for (const Metric& m : kMetrics) {
      figures[std::string("average_") + m.key] = avg[m.key];
      figures[std::string("std_dev_") + m.key] = sd[m.key];
    }
    return figures;
  }

 private:
  struct ImageRow {
    std::size_t subset;
    std::string id;
    double s_measure, mae;
  };
  struct Map {
    std::size_t subset;
    std::string id;
    torch::Tensor map;
  };

  static std::string number(double v) { return std::isnan(v) ? "null" : fixed(v, 6); }
  std::string name(std::size_t s) const {
    std::string out;
    for (std::size_t c = 0; c < masks_[s].size(); ++c)
      if (masks_[s][c]) out += (out.empty() ? "" : "+") + modalities_[c];
    return out;
  }

  std::vector<std::string> modalities_;
  std::string style_;
  bool pysod_ = false, normalize_ = true, maps_ = false;
  std::vector<std::vector<std::int64_t>> masks_;
  std::vector<metrics::SodAccumulator> scores_;
  std::vector<ImageRow> rows_;
  std::vector<Map> maps_pending_;
  std::int64_t seen_ = 0;
};

}  // namespace

void register_sod_report_node(Registry& registry) { add_nodes<SodReport>(registry); }

}  // namespace umrflow::nodes
