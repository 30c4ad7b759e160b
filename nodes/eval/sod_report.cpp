// `eval.sod_report`: salient object detection scores of every modality subset
// (S-measure, max and mean F, max and mean E, MAE; eval/sod_metrics.h), over
// the images of an evaluation run, written in the layout of the paper's
// Table 2 (eval/subset_table.h).
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
#include "eval/subset_table.h"
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

class SodReport final : public StepNode {
 public:
  static void declare(Declaration<SodReport>& d) {
    d.type("eval.sod_report", NodeKind::step,
           "S-measure, F-measure, E-measure and MAE per modality subset; at the end writes report.md/.csv/.json and per_image.csv "
           "(Table 2 layout: single modalities, both, Average, Std Dev) and, on request, the saliency maps as PNG.");
    eval::declare_subset_report(d, &SodReport::modalities_, "logits (S*B, 1, H, W)", "(B, 1, H, W) in [0, 1]");
    d.output({"s_measure", 3, "float64 (S, B, 1): each image's S-measure"});
    d.output({"mean_s_measure", 0, "mean of `s_measure`; for train.validate"});
    d.param(&SodReport::style_, param::choice("s_measure", "sslsod", {"sslsod", "pysod"},
                                              "S-measure arithmetic: SSLSOD's (the configuration UniMRSeg names) or PySOD's (MATLAB's)"));
    d.param(&SodReport::normalize_,
            param::boolean("normalize", true, "min-max normalise each saliency map first, as both references do with a saved map"));
    d.param(&SodReport::maps_, param::boolean("maps", false, "write every subset's saliency map as an 8-bit PNG into maps/<subset>/"));
  }
  void setup() { pysod_ = style_ == "pysod"; }

  Packet run(const std::vector<Packet>& in, Context&) override {
    const torch::Tensor label = in.at(1).at("label").to(torch::kCPU).to(torch::kFloat64);
    const torch::Tensor prob = torch::sigmoid(metrics::at_label_size(metrics::require_finite_output(in.at(0).at("pred").detach().to(torch::kCPU).to(torch::kFloat64), "pred"), label));
    const torch::Tensor present = in.at(2).at("present").to(torch::kCPU).to(torch::kLong).contiguous();
    const std::int64_t subsets = present.size(0), images = label.size(0);
    if (label.size(1) != 1 || prob.size(0) != subsets * images || prob.size(1) != 1 || prob.sizes().slice(2) != label.sizes().slice(2))
      throw std::runtime_error("pred " + c10::str(prob.sizes()) + " does not hold " + std::to_string(subsets) + " subsets of the " +
                               std::to_string(images) + " one-channel maps of label " + c10::str(label.sizes()));
    if (rows_of_.check(present.data_ptr<std::int64_t>(), subsets, present.size(1), modalities_))
      scores_.assign(subsets, metrics::SodAccumulator(pysod_ ? metrics::SmeasureStyle::pysod : metrics::SmeasureStyle::sslsod));
    torch::Tensor sm = torch::empty({subsets, images, 1}, torch::kFloat64);
    for (std::int64_t s = 0; s < subsets; ++s)
      for (std::int64_t b = 0; b < images; ++b) {
        torch::Tensor p = prob[s * images + b][0], g = label[b][0];
        if (normalize_) p = metrics::minmax_normalize(p);
        const metrics::SodAccumulator::ImageScores own = scores_[s].add(p, g);
        const std::string id = b < static_cast<std::int64_t>(in.at(1).samples.size()) ? in.at(1).samples[b].id : "image" + std::to_string(seen_ + b);
        rows_.push_back({static_cast<std::size_t>(s), id, own.s_measure, own.mae});
        sm[s][b][0] = rows_.back().s_measure;
        if (maps_) {
          // Kept PNG-encoded (a few KiB each) until finish() knows the run directory.
          const torch::Tensor map = (p * 255.0).round().clamp(0, 255).to(torch::kUInt8).contiguous();
          const image2d::Image img{static_cast<int>(map.size(1)), static_cast<int>(map.size(0)), 1,
                                   std::vector<std::uint8_t>(map.data_ptr<std::uint8_t>(), map.data_ptr<std::uint8_t>() + map.numel())};
          maps_pending_.push_back({static_cast<std::size_t>(s), id, image2d::encode_png(img)});
        }
      }
    seen_ += images;
    Packet out;
    out.tensors["s_measure"] = sm;
    if (sm.numel() > 0) out.tensors["mean_s_measure"] = sm.mean().to(torch::kFloat32);
    return out;
  }

  std::map<std::string, double> finish(const std::string& run_dir) override {
    if (rows_of_.empty()) return {};
    eval::SubsetTable table;
    table.modalities = modalities_;
    table.masks = rows_of_.masks();
    for (const Metric& m : kMetrics) table.metrics.push_back({m.key, m.title, 3});
    std::int64_t images = 0;
    for (auto& acc : scores_) {
      const metrics::SodScores r = acc.result();
      images = r.images;
      table.values.emplace_back();
      for (const Metric& m : kMetrics) table.values.back().push_back(r.*m.field);
    }
    table.caption = "Saliency per modality subset over " + std::to_string(images) + " image(s); S-measure alpha 0.5 (" +
                    (pysod_ ? "PySOD" : "SSLSOD") + " arithmetic), F with beta^2 0.3; Average and Std Dev over the " +
                    std::to_string(rows_of_.masks().size()) + " subsets (population).";
    table.fields = {{"images", std::to_string(images)}, {"s_measure_style", pysod_ ? "\"pysod\"" : "\"sslsod\""}};
    const std::map<std::string, double> figures = eval::write_report(table, run_dir);
    const fs::path dir = run_dir;
    std::ostringstream per_image;
    per_image << "input,image,s_measure,mae\n";
    for (const auto& r : rows_) per_image << name(r.subset) << "," << r.id << "," << eval::fixed(r.s_measure, 6) << "," << eval::fixed(r.mae, 6) << "\n";
    write_file_atomically((dir / "per_image.csv").string(), per_image.str());
    for (const auto& m : maps_pending_) {
      const fs::path folder = dir / "maps" / name(m.subset);
      fs::create_directories(folder);
      // Named after the sample id with its extension dropped and folders joined
      // by '_', so that equal file names from different folders stay apart.
      std::string stem = fs::path(m.id).replace_extension().string();
      std::replace(stem.begin(), stem.end(), '/', '_');
      write_file_atomically((folder / (stem + ".png")).string(), std::string(m.png.begin(), m.png.end()));
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
    std::vector<std::uint8_t> png;
  };

  std::string name(std::size_t s) const { return eval::subset_name(rows_of_.masks()[s], modalities_); }

  std::vector<std::string> modalities_;
  std::string style_;
  bool pysod_ = false, normalize_ = true, maps_ = false;
  eval::SubsetRows rows_of_;
  std::vector<metrics::SodAccumulator> scores_;
  std::vector<ImageRow> rows_;
  std::vector<Map> maps_pending_;
  std::int64_t seen_ = 0;
};

}  // namespace

void register_sod_report_node(Registry& registry) { add_nodes<SodReport>(registry); }

}  // namespace umrflow::nodes
