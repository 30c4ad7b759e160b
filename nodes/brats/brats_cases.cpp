// BraTS case discovery, label regions, the `brats.cases` source node and the
// `brats.*` family's registration.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "brats/brats.h"
#include "brats/brats_nodes.h"
#include "builtin.h"
#include "io/nifti.h"
#include "io/split.h"
#include "umrflow/declare.h"
#include "umrflow/node.h"

namespace umrflow::brats {

namespace fs = std::filesystem;

const std::vector<std::string>& default_modalities() {
  static const std::vector<std::string> m = {"flair", "t1ce", "t1", "t2"};
  return m;
}

const std::string& modality_alias(const std::string& name) {
  static const std::map<std::string, std::string> aliases = {{"flair", "t2f"}, {"t2f", "flair"}, {"t1ce", "t1c"}, {"t1c", "t1ce"},
                                                             {"t1", "t1n"},    {"t1n", "t1"},    {"t2", "t2w"},   {"t2w", "t2"}};
  static const std::string none;
  const auto it = aliases.find(name);
  return it == aliases.end() ? none : it->second;
}

std::size_t modality_index(const std::vector<std::string>& modalities, const std::string& name) {
  const auto it = std::find_if(modalities.begin(), modalities.end(), [&](const std::string& m) { return m == name || modality_alias(m) == name; });
  return static_cast<std::size_t>(it - modalities.begin());
}

const std::vector<std::string>& region_names() {
  static const std::vector<std::string> r = {"TC", "WT", "ET", "NCR", "ED"};
  return r;
}

namespace {

/// "ID_flair.nii[.gz] or ID-t2f.nii[.gz]": the names a scan is looked for
/// under, the 2018-2021 one with `_`, the 2023 one with `-`.
std::string file_names(const std::string& id, const std::string& modality) {
  const std::string& alias = modality_alias(modality);
  const bool early_name = std::count(default_modalities().begin(), default_modalities().end(), modality) > 0;  // a 2018-2021 name
  const std::string early = alias.empty() || early_name ? modality : alias;
  const std::string late = alias.empty() || !early_name ? modality : alias;
  return id + "_" + early + ".nii[.gz] or " + id + "-" + late + ".nii[.gz]";
}

/// The file of `name` (a modality or "seg") in a case folder: `<id>_<name>` (BraTS
/// 2018-2021) or `<id>-<name>` (BraTS 2023 on), under the name or its alias of the
/// other naming, `.nii.gz` or `.nii`.
std::string find_file(const fs::path& folder, const std::string& id, const std::string& name) {
  std::vector<std::string> names = {name};
  if (!modality_alias(name).empty()) names.push_back(modality_alias(name));
  for (const auto& n : names)
    for (const char* separator : {"_", "-"})
      for (const char* ext : {".nii.gz", ".nii"}) {
        fs::path p = folder / (id + separator + n + ext);
        if (fs::exists(p)) return p.string();
      }
  return "";
}

void scan(const fs::path& dir, int depth, const std::vector<std::string>& modalities, std::vector<Case>& out) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_directory()) continue;
    const std::string id = entry.path().filename().string();
    if (!find_file(entry.path(), id, modalities.front()).empty()) {
      Case c;
      c.id = id;
      c.folder = entry.path().string();
      for (const auto& m : modalities) c.modality_files.push_back(find_file(entry.path(), id, m));
      c.label_file = find_file(entry.path(), id, "seg");
      if (c.label_file.rfind((entry.path() / (id + "-seg")).string(), 0) == 0) c.numbering = LabelNumbering::brats2023;
      out.push_back(std::move(c));
    } else if (depth > 1) {
      scan(entry.path(), depth - 1, modalities, out);
    }
  }
}

}  // namespace

std::vector<Case> discover_cases(const std::string& root, const std::vector<std::string>& modalities) {
  if (!fs::is_directory(root)) throw std::runtime_error("'" + root + "': no such folder (the BraTS data root)");
  std::vector<Case> out;
  scan(root, 3, modalities, out);
  std::sort(out.begin(), out.end(), [](const Case& a, const Case& b) { return a.id < b.id; });
  return out;
}

torch::Tensor labels_to_regions(const torch::Tensor& label, const std::vector<std::string>& regions, LabelNumbering numbering) {
  if (label.is_floating_point()) {
    // Labels are classes: a value off an integer means a resampled or rescaled map, whose rounding would relabel voxels.
    const torch::Tensor off = ~torch::isfinite(label) | ((label - label.round()).abs() > 1e-4);
    if (off.any().item<bool>()) {
      const double v = label.masked_select(off)[0].item<double>();
      throw std::invalid_argument("label value " + std::to_string(v) + " in " + std::to_string(off.sum().item<std::int64_t>()) +
                                  " voxel(s) is not an integer; BraTS labels are 0, 1, 2 and 4 (or 3) (was the label map resampled "
                                  "with interpolation, or written with a scale factor? resample labels with nearest neighbour)");
    }
  }
  const bool numbered_2023 = numbering == LabelNumbering::brats2023;
  const std::int64_t et = numbered_2023 ? 3 : 4, other_et = numbered_2023 ? 4 : 3;
  torch::Tensor l = label.round().to(torch::kInt64);
  const torch::Tensor valid = (l == 0) | (l == 1) | (l == 2) | (l == et);
  if (!valid.all().item<bool>()) {
    const torch::Tensor bad = l.masked_select(~valid);
    const std::int64_t value = bad[0].item<std::int64_t>();
    std::string why = "label value " + std::to_string(value) + " in " + std::to_string(bad.numel()) + " voxel(s); " +
                      (numbered_2023 ? "BraTS 2023 labels are 0, 1, 2 and 3" : "BraTS 2018-2021 labels are 0, 1, 2 and 4");
    if (value == other_et)
      why += numbered_2023 ? " (if this map numbers the enhancing tumour 4 as up to 2021, set label_numbering: brats2021; BraTS "
                             "2024's resection cavity, 4 in its post-treatment maps, is no region umrflow knows)"
                           : " (if this map numbers the enhancing tumour 3 as BraTS 2023 does, set label_numbering: brats2023)";
    throw std::invalid_argument(why);
  }
  if (numbered_2023) l = torch::where(l == 3, torch::full({}, 4, l.options()), l);
  std::vector<torch::Tensor> channels;
  for (const auto& r : regions) {
    if (r == "TC") channels.push_back((l == 1) | (l == 4));
    else if (r == "WT") channels.push_back(l > 0);
    else if (r == "ET") channels.push_back(l == 4);
    else if (r == "NCR") channels.push_back(l == 1);
    else if (r == "ED") channels.push_back(l == 2);
    else throw std::invalid_argument("unknown region '" + r + "' (TC, WT, ET, NCR, ED)");
  }
  return torch::stack(channels).to(torch::kUInt8);
}

torch::Tensor regions_to_labels(const torch::Tensor& regions_mask, const std::vector<std::string>& regions, std::uint8_t et_label) {
  if (et_label != 3 && et_label != 4) throw std::invalid_argument("the enhancing tumour's label is 4 (BraTS 2018-2021) or 3 (2023 on), not " + std::to_string(et_label));
  if (regions_mask.dim() < 1 || regions_mask.size(0) != static_cast<std::int64_t>(regions.size()))
    throw std::invalid_argument("regions_to_labels: " + c10::str(regions_mask.sizes()) + " does not hold " +
                                std::to_string(regions.size()) + " region channels");
  const torch::Tensor mask = regions_mask.to(torch::kBool);
  torch::Tensor labels = torch::zeros(mask[0].sizes(), torch::kUInt8);
  const std::vector<std::pair<std::string, std::uint8_t>> painted = {{"WT", 2}, {"ED", 2}, {"TC", 1}, {"NCR", 1}, {"ET", et_label}};
  for (const auto& r : regions)
    if (std::none_of(painted.begin(), painted.end(), [&](const auto& p) { return p.first == r; }))
      throw std::invalid_argument("unknown region '" + r + "' (TC, WT, ET, NCR, ED)");
  for (const auto& [name, value] : painted)
    for (std::size_t r = 0; r < regions.size(); ++r)
      if (regions[r] == name) labels.masked_fill_(mask[r], value);
  return labels;
}

LoadedCase read_case(const Case& c, const std::vector<std::string>& modalities_, const std::vector<std::string>& regions_,
                     bool need_label_, bool allow_missing) {
    std::vector<torch::Tensor> channels(modalities_.size());
    io::Affine affine{};
    std::vector<std::int64_t> shape;
    std::string first;  // the file that set shape and affine
    LoadedCase out;
    for (std::size_t m = 0; m < modalities_.size(); ++m) {
      out.present.push_back(!c.modality_files[m].empty());
      if (c.modality_files[m].empty()) {
        if (allow_missing) continue;
        throw std::runtime_error("missing modality '" + modalities_[m] + "' (no " + file_names(c.id, modalities_[m]) + " in " + c.folder + ")");
      }
      io::Volume v = io::read_nifti(c.modality_files[m]);
      if (v.data.dim() != 3)
        throw std::runtime_error("'" + c.modality_files[m] + "' has " + std::to_string(v.data.dim()) + " axes, expected 3");
      const std::vector<std::int64_t> s(v.data.sizes().begin(), v.data.sizes().end());
      if (first.empty()) {
        shape = s;
        affine = v.affine;
        first = c.modality_files[m];
      } else if (s != shape) {
        throw std::runtime_error("'" + c.modality_files[m] + "' has shape " + c10::str(v.data.sizes()) + " but '" + first +
                                 "' has " + c10::str(c10::IntArrayRef(shape)));
      } else {
        for (int k = 0; k < 16; ++k)
          if (!(std::abs(v.affine[k] - affine[k]) <= kAffineTolerance))
            throw std::runtime_error("'" + c.modality_files[m] + "' and '" + first + "' are on different grids: affine entry (" +
                                     std::to_string(k / 4) + ", " + std::to_string(k % 4) + ") is " + std::to_string(v.affine[k]) +
                                     " against " + std::to_string(affine[k]) + " (tolerance " + std::to_string(kAffineTolerance) +
                                     "); register the scans to one grid first");
      }
      if (!torch::isfinite(v.data).all().item<bool>())
        throw std::runtime_error("'" + c.modality_files[m] + "' holds " +
                                 std::to_string((~torch::isfinite(v.data)).sum().item<std::int64_t>()) +
                                 " NaN or infinite voxel(s)");
      channels[m] = v.data;
    }
    if (first.empty()) throw std::runtime_error("case " + c.id + ": no modality file at all");
    for (auto& ch : channels)
      if (!ch.defined()) ch = torch::zeros(shape, torch::kFloat32);
    out.image = torch::stack(channels);
    out.affine.assign(affine.begin(), affine.end());
    if (need_label_) {
      if (c.label_file.empty()) throw std::runtime_error("missing label file " + c.id + "_seg.nii[.gz] or " + c.id + "-seg.nii[.gz] in " + c.folder);
      io::Volume l = io::read_nifti(c.label_file);
      if (std::vector<std::int64_t>(l.data.sizes().begin(), l.data.sizes().end()) != shape)
        throw std::runtime_error("'" + c.label_file + "' has shape " + c10::str(l.data.sizes()) + ", the images " +
                                 c10::str(c10::IntArrayRef(shape)));
      try {
        out.label = labels_to_regions(l.data, regions_, c.numbering);
      } catch (const std::invalid_argument& e) {
        throw std::runtime_error("'" + c.label_file + "': " + e.what());
      }
    }
    return out;
}

std::string verify_cases(const std::string& root, const std::vector<std::string>& modalities,
                         const std::function<void(std::int64_t, std::int64_t)>& progress) {
  if (modalities.empty()) throw std::invalid_argument("no modality to look for (--modalities is empty)");
  const std::vector<Case> cases = discover_cases(root, modalities);
  if (cases.empty()) throw std::runtime_error("no BraTS case (a folder ID holding " + file_names("ID", modalities.front()) + ")");
  const std::vector<std::string> regions = {"TC", "WT", "ET"};
  std::int64_t labelled = 0, named_2023 = 0, with[3] = {0, 0, 0};
  std::set<std::string> shapes;
  std::vector<std::string> bad, unlabelled;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    try {
      const LoadedCase l = read_case(c, modalities, regions, !c.label_file.empty());
      shapes.insert(std::to_string(l.image.size(1)) + "x" + std::to_string(l.image.size(2)) + "x" + std::to_string(l.image.size(3)));
      named_2023 += fs::path(c.modality_files.front()).filename().string().rfind(c.id + "-", 0) == 0;
      if (l.label.defined()) {
        ++labelled;
        for (int r = 0; r < 3; ++r) with[r] += l.label[r].any().item<bool>();
      } else {
        unlabelled.push_back(c.id);
      }
    } catch (const std::exception& e) {
      bad.push_back("case " + c.id + ": " + e.what());
    }
    if (progress) progress(static_cast<std::int64_t>(i) + 1, static_cast<std::int64_t>(cases.size()));
  }
  const std::string n = std::to_string(cases.size());
  if (!bad.empty()) {
    std::string why = std::to_string(bad.size()) + " of " + n + " cases are bad: ";
    for (std::size_t i = 0; i < bad.size() && i < 10; ++i) why += (i ? "; " : "") + bad[i];
    if (bad.size() > 10) why += "; and " + std::to_string(bad.size() - 10) + " more";
    throw std::runtime_error(why);
  }
  std::string naming = named_2023 == 0 ? "BraTS 2018-2021 names"
                       : named_2023 == static_cast<std::int64_t>(cases.size()) ? "BraTS 2023 names"
                                                                              : "both namings";
  std::string shape_list;
  for (const auto& s : shapes) {
    if (shape_list.size() > 60) {
      shape_list += ", ...";
      break;
    }
    shape_list += (shape_list.empty() ? "" : ", ") + s;
  }
  std::string without;
  if (labelled > 0 && !unlabelled.empty()) {  // a training run (labels: true) stops at these
    without = "; " + std::to_string(unlabelled.size()) + " without a label file, which a training run stops at: ";
    for (std::size_t i = 0; i < unlabelled.size() && i < 10; ++i) without += (i ? ", " : "") + unlabelled[i];
    if (unlabelled.size() > 10) without += ", ...";
  }
  return "BraTS cases: " + n + " read whole (" + naming + ", every scan finite and on one grid), " + std::to_string(labelled) +
         " with labels (TC in " + std::to_string(with[0]) + ", WT in " + std::to_string(with[1]) + ", ET in " + std::to_string(with[2]) +
         "), " + (shapes.size() == 1 ? "shape " : std::to_string(shapes.size()) + " shapes: ") + shape_list + without;
}

void BratsCases::setup() {
  skip_bad_ = on_bad_case_ == "skip";
  cases_ = discover_cases(root_, modalities_);
  if (cases_.empty())
    throw std::runtime_error("no BraTS cases under '" + root_ + "' (expected folders ID holding " + file_names("ID", modalities_.front()) +
                             "; `umrflow synth brats` writes phantoms in the first layout)");
  if (!split_.empty()) {
    std::vector<std::string> ids;
    for (const auto& c : cases_) ids.push_back(c.id);
    const auto keep = io::select_subset(ids, io::read_split(split_), subset_, split_);
    const std::set<std::string> kept(keep.begin(), keep.end());
    cases_.erase(std::remove_if(cases_.begin(), cases_.end(), [&](const Case& c) { return !kept.count(c.id); }), cases_.end());
  }
  if (limit_ > 0 && static_cast<std::size_t>(limit_) < cases_.size()) cases_.resize(limit_);
  if (label_numbering_ != "auto")
    for (auto& c : cases_) c.numbering = label_numbering_ == "brats2023" ? LabelNumbering::brats2023 : LabelNumbering::brats2021;
}

Packet BratsCases::load(std::int64_t index, Context&) {
  const Case& c = cases_.at(index);
  try {
    LoadedCase l = read_case(c, modalities_, regions_, need_label_);
    Packet p;
    p.tensors["image"] = l.image;
    if (l.label.defined()) p.tensors["label"] = l.label;
    p.tensors["affine"] = torch::from_blob(l.affine.data(), {4, 4}, torch::kFloat64).clone();
    SampleMeta meta;
    meta.id = c.id;
    meta.tags["shape"] = {l.image.size(1), l.image.size(2), l.image.size(3)};
    p.samples.push_back(std::move(meta));
    return p;
  } catch (const std::exception& e) {
    const std::string why = "case " + c.id + ": " + e.what();
    if (skip_bad_) throw SkipSample(why);
    throw std::runtime_error(why);
  }
}

}  // namespace umrflow::brats

namespace umrflow::nodes {

void register_brats_nodes(Registry& registry) { add_nodes<brats::BratsCases, brats::BratsH5, brats::BratsScans, brats::WriteLabels>(registry); }

}  // namespace umrflow::nodes
