// `eval.seg_report`: semantic segmentation scores of every modality subset
// (mIoU and pixel accuracy from a confusion matrix summed over the data set,
// eval/sod_metrics.h's ConfusionMatrix), written in the layout of the paper's
// Table 2 (eval/subset_table.h), plus each class's IoU per subset.
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "builtin.h"
#include "eval/sod_metrics.h"
#include "eval/subset_table.h"
#include "umrflow/declare.h"
#include "umrflow/files.h"
#include "umrflow/node.h"

namespace umrflow::nodes {

namespace {

class SegReport final : public StepNode {
 public:
  static void declare(Declaration<SegReport>& d) {
    d.type("eval.seg_report", NodeKind::step,
           "mIoU and pixel accuracy per modality subset from confusion matrices summed over the data set (ESANet's and ACNet's "
           "arithmetic); at the end writes report.md/.csv/.json (Table 2 layout: single modalities, both, Average, Std Dev) and "
           "per_class.csv.");
    eval::declare_subset_report(d, &SegReport::modalities_, "logits (S*B, classes, H, W)", "(B, 1, H, W) integer labels");
    d.output({"pixel_accuracy", 0, "this batch's pixel accuracy over all subsets; for train.validate"});
    d.param(&SegReport::options_, &metrics::ConfusionOptions::num_classes,
            param::integer("classes", 37, "classes the network predicts (its output channels)").range(1, 65535));
    d.param(&SegReport::options_, &metrics::ConfusionOptions::ignore_label,
            param::integer("ignore_label", 0, "ground-truth value left out (SUN-RGBD: 0, unlabelled)"));
    d.param(&SegReport::options_, &metrics::ConfusionOptions::gt_offset,
            param::integer("label_offset", 1, "class = ground-truth value - label_offset (SUN-RGBD: 1)"));
  }

  Packet run(const std::vector<Packet>& in, Context&) override {
    const torch::Tensor raw_label = in.at(1).at("label").to(torch::kCPU);
    if (raw_label.is_floating_point() && !torch::equal(raw_label, raw_label.round()))
      throw std::runtime_error("label must hold whole class numbers (a class map, resized by nearest neighbour or kept)");
    const torch::Tensor label = raw_label.to(torch::kLong);
    const torch::Tensor pred = metrics::at_label_size(metrics::require_finite_output(in.at(0).at("pred").detach().to(torch::kCPU).to(torch::kFloat32), "pred"), label).argmax(1);
    const torch::Tensor present = in.at(2).at("present").to(torch::kCPU).to(torch::kLong).contiguous();
    const std::int64_t subsets = present.size(0), images = label.size(0);
    if (in.at(0).at("pred").size(1) != options_.num_classes)
      throw std::runtime_error("pred has " + std::to_string(in.at(0).at("pred").size(1)) + " channels but classes is " +
                               std::to_string(options_.num_classes) + " (set `classes` to the network's output channels)");
    if (label.size(1) != 1 || pred.size(0) != subsets * images || pred.sizes().slice(1) != label.sizes().slice(2))
      throw std::runtime_error("pred " + c10::str(in.at(0).at("pred").sizes()) + " does not hold " + std::to_string(subsets) +
                               " subsets of the " + std::to_string(images) + " maps of label " + c10::str(label.sizes()));
    if (rows_of_.check(present.data_ptr<std::int64_t>(), subsets, present.size(1), modalities_)) {
      for (std::int64_t s = 0; s < subsets; ++s) matrices_.emplace_back(options_);
    }
    metrics::ConfusionMatrix batch(options_);
    for (std::int64_t s = 0; s < subsets; ++s) {
      metrics::ConfusionMatrix part(options_);
      part.add(pred.narrow(0, s * images, images), label.squeeze(1));
      matrices_[static_cast<std::size_t>(s)].merge(part);
      batch.merge(part);
    }
    Packet out;
    const double accuracy = batch.pixel_accuracy();
    if (!std::isnan(accuracy)) out.tensors["pixel_accuracy"] = torch::tensor(static_cast<float>(accuracy));
    return out;
  }

  std::map<std::string, double> finish(const std::string& run_dir) override {
    if (rows_of_.empty()) return {};
    eval::SubsetTable table;
    table.modalities = modalities_;
    table.masks = rows_of_.masks();
    table.metrics = {{"miou", "mIoU (%)", 1}, {"miou_present", "mIoU, classes seen (%)", 1}, {"pixel_accuracy", "pixel acc. (%)", 1}};
    for (const auto& m : matrices_) table.values.push_back({100 * m.miou(), 100 * m.miou_present(), 100 * m.pixel_accuracy()});
    table.caption = "Segmentation per modality subset over " + std::to_string(options_.num_classes) +
                    " classes; mIoU from the confusion matrix summed over all images (classes absent from ground truth and "
                    "prediction count 0; the second column leaves them out); Average and Std Dev over the " +
                    std::to_string(rows_of_.masks().size()) + " subsets (population).";
    table.fields = {{"classes", std::to_string(options_.num_classes)}};
    std::map<std::string, double> figures = eval::write_report(table, run_dir);
    std::ostringstream per_class;
    per_class << "input";
    for (std::int64_t c = 0; c < options_.num_classes; ++c) per_class << ",iou_" << c;
    per_class << "\n";
    for (const std::size_t s : eval::table_order(rows_of_.masks())) {
      per_class << eval::subset_name(rows_of_.masks()[s], modalities_);
      const torch::Tensor iou = matrices_[s].iou();
      for (std::int64_t c = 0; c < options_.num_classes; ++c) per_class << "," << eval::fixed(iou[c].item<double>(), 6);
      per_class << "\n";
    }
    write_file_atomically(run_dir + "/per_class.csv", per_class.str());
    return figures;
  }

 private:
  std::vector<std::string> modalities_;
  metrics::ConfusionOptions options_;
  eval::SubsetRows rows_of_;
  std::vector<metrics::ConfusionMatrix> matrices_;
};

}  // namespace

void register_seg_report_node(Registry& registry) { add_nodes<SegReport>(registry); }

}  // namespace umrflow::nodes
