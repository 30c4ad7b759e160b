// brats_nodes.h: the `brats.*` source nodes. Declared here so that the
// family's one list (register_brats_nodes, brats_cases.cpp) sees both; their
// loading code lives in brats_cases.cpp and brats_h5.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "brats/brats.h"
#include "io/h5cache.h"
#include "umrflow/declare.h"
#include "umrflow/node.h"

namespace umrflow::brats {

/// Source: one BraTS case per sample. Provides `image` (M, X, Y, Z) float32 in
/// the requested modality order, `label` (R, X, Y, Z) uint8 region channels and
/// `affine` (4, 4) float64.
class BratsCases final : public SourceNode {
 public:
  static void declare(Declaration<BratsCases>& d) {
    d.type("brats.cases", NodeKind::source,
           "BraTS cases from NIfTI folders (2018-2021 names, or 2023's with ET = 3): `image` (modalities), `label` (region channels), `affine`.");
    d.output({"image", 4, "float32 (modalities, X, Y, Z), scanner intensities"});
    d.output({"label", 4, "uint8 (regions, X, Y, Z)"});
    d.output({"affine", 2, "float64 4x4 voxel-to-world matrix"});
    d.param(&BratsCases::root_, param::text("root", std::nullopt, "folder holding the case folders (searched three levels deep)"));
    d.param(&BratsCases::modalities_, param::texts("modalities", default_modalities(),
                                                             "modality file suffixes, in channel order (BraTS 2023's t2f, t1c, t1n, t2w are found as flair, t1ce, t1, t2)"));
    d.param(&BratsCases::regions_,
            param::texts("regions", std::vector<std::string>{"TC", "WT", "ET"}, "label channels: TC, WT, ET, NCR, ED"));
    d.param(&BratsCases::need_label_, param::boolean("labels", true, "read `<ID>_seg` (or `<ID>-seg`); false for unlabelled cases"));
    d.param(&BratsCases::label_numbering_,
            param::choice("label_numbering", "auto", {"auto", "brats2021", "brats2023"},
                          "the label maps' enhancing tumour: 4 (brats2021, as 2018-2021) or 3 (brats2023); auto: 3 for a case "
                          "named as from 2023 (`<ID>-seg`), else 4"));
    d.param(&BratsCases::on_bad_case_, param::choice("on_bad_case", "fail", {"fail", "skip"},
                                                     "a bad case stops the run, or is skipped and listed in skipped.tsv"));
    d.param(&BratsCases::limit_, param::integer("limit", 0, "use only the first N cases (sorted by id); 0 = all").min(0));
    d.param(&BratsCases::split_, param::text("split", "", "split file (umrflow split); empty: every case"));
    d.param(&BratsCases::subset_,
            param::choice("subset", "train", {"train", "val", "test", "all"}, "which list of the split file to use"));
  }
  /// Finds the cases under root, keeps the split's subset, then the first `limit`.
  void setup();

  std::int64_t size() const override { return static_cast<std::int64_t>(cases_.size()); }
  Packet load(std::int64_t index, Context&) override;

 private:
  std::string root_, on_bad_case_, split_, subset_;
  std::vector<std::string> modalities_, regions_;
  bool need_label_ = false;
  std::int64_t limit_ = 0;
  std::string label_numbering_ = "auto";
  bool skip_bad_ = false;
  std::vector<Case> cases_;
};

/// Source: cases from the HDF5 cache. Emulates the foreground crop rounded up
/// to multiples of k (the stored box is the foreground box) followed by a
/// uniform random crop, reading only the window's chunks.
class BratsH5 final : public SourceNode {
 public:
  static void declare(Declaration<BratsH5>& d) {
    d.type("brats.h5", NodeKind::source,
           "Cases from a `umrflow convert brats` cache: foreground box rounded to k, then a random crop read by hyperslab.");
    d.output({"image", 4, "float32 (modalities, x, y, z)"});
    d.output({"label", 4, "uint8 (regions, x, y, z)"});
    d.output({"affine", 2, "float64 4x4"});
    d.param(&BratsH5::file_, param::text("file", std::nullopt, "the cache file (.h5)"));
    d.param(&BratsH5::crop_, param::integers("crop", std::vector<std::int64_t>{128, 128, 128},
                                             "random crop size; 0 on an axis keeps the whole padded box")
                                 .length(3)
                                 .min(0));
    d.param(&BratsH5::k_, param::integers("k_divisible", std::vector<std::int64_t>{128, 128, 128},
                                          "the foreground box is rounded up to multiples of this")
                              .length(3)
                              .min(1));
    d.param(&BratsH5::limit_, param::integer("limit", 0, "use only the first N cases; 0 = all").min(0));
    d.param(&BratsH5::memory_mib_,
            param::integer("memory_cache", 2048,
                           "MiB of decoded chunks kept in memory (first come, kept for the run); 0 decodes every read")
                .range(0, 1 << 22));
  }
  /// Opens the cache file and counts the cases to use.
  void setup();

  std::int64_t size() const override { return count_; }
  Packet load(std::int64_t index, Context& ctx) override;

 private:
  std::string file_;
  std::vector<std::int64_t> crop_, k_;
  std::int64_t limit_ = 0, memory_mib_ = 0;
  std::unique_ptr<io::CacheReader> reader_;
  std::int64_t count_ = 0;
};

/// Source: the cases of a predict list (brats/predict.h), any subset of the
/// modalities each. Provides `image` (M, X, Y, Z) with absent modalities as
/// zeros, `affine`, and the tags `present` (1 per modality read) and `shape`.
class BratsScans final : public SourceNode {
 public:
  static void declare(Declaration<BratsScans>& d) {
    d.type("brats.scans", NodeKind::source,
           "Unlabelled scans listed in a predict list (any subset of modalities per case): `image`, `affine`, tag `present`.");
    d.output({"image", 4, "float32 (modalities, X, Y, Z), absent modalities zero"});
    d.output({"affine", 2, "float64 4x4 voxel-to-world matrix"});
    d.param(&BratsScans::list_, param::text("list", std::nullopt, "the predict list (written by `umrflow predict`, or by hand)"));
  }
  void setup();

  std::int64_t size() const override { return static_cast<std::int64_t>(cases_.size()); }
  Packet load(std::int64_t index, Context&) override;

 private:
  std::string list_;
  std::vector<std::string> modalities_;
  std::vector<Case> cases_;
};

/// Step: each case's prediction (sigmoid > threshold per region channel) as a
/// BraTS label map on the grid of its scans: pasted back at the tag
/// `foreground_start` when the data plane cropped (volume.crop_foreground),
/// written with the header of the case's first modality file, to the `out` of
/// its predict-list entry (a temporary file renamed into place, so no
/// half-written map is left). Optionally the per-region probabilities.
class WriteLabels final : public StepNode {
 public:
  static void declare(Declaration<WriteLabels>& d) {
    d.type("brats.write_labels", NodeKind::step,
           "Writes predictions as BraTS label maps (0, 1, 2, 4; or 3 for ET) on the scans' grid with their header, to the predict list's paths.");
    d.input(PortSpec{"pred", {{"logits", 5, "(B, R, x, y, z)"}}, "the network's output"});
    d.input(PortSpec{"case", {{"affine", 3, "(B, 4, 4)"}}, "the batch, for its case ids and tags"});
    d.output({"foreground", 0, "share of voxels labelled non-zero, over the batch"});
    d.summary_figure({"cases", 0, "label maps written"});
    d.param(&WriteLabels::list_, param::text("list", std::nullopt, "the predict list that names each case's output"));
    d.param(&WriteLabels::regions_,
            param::texts("regions", std::vector<std::string>{"TC", "WT", "ET"}, "what the output channels are, in order"));
    d.param(&WriteLabels::threshold_, param::number("threshold", 0.5, "sigmoid(logit) above this is foreground").range(0, 1));
    d.param(&WriteLabels::probabilities_,
            param::boolean("probabilities", false, "also write each region's sigmoid as float32 `<out>_<REGION>.nii.gz`"));
    d.param(&WriteLabels::et_label_,
            param::integer("et_label", 4, "the enhancing tumour's label value: 4 as BraTS 2018-2021, 3 as BraTS 2023 on").range(3, 4));
  }
  void setup();

  Packet run(const std::vector<Packet>& inputs, Context&) override;
  std::map<std::string, double> finish(const std::string&) override;

 private:
  std::string list_;
  std::vector<std::string> regions_;
  double threshold_ = 0.5;
  bool probabilities_ = false;
  std::int64_t et_label_ = 4;
  std::map<std::string, std::vector<std::string>> outputs_;  // id -> {out, reference file}
  std::int64_t written_ = 0;
};

}  // namespace umrflow::brats
