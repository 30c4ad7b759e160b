// brats.h: BraTS cases on disk, label regions, and the synthetic phantoms.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace umrflow::brats {

/// How a label map numbers the tumour classes. BraTS 2018-2021: 1 necrotic
/// core, 2 oedema, 4 enhancing tumour. BraTS 2023 (GLI, MEN, MET, SSA): the
/// same with the enhancing tumour 3.
enum class LabelNumbering { brats2021, brats2023 };

/// One case folder: `<root>/.../<ID>/<ID>_<modality>.nii[.gz]` plus `<ID>_seg`.
struct Case {
  std::string id;
  std::string folder;
  std::vector<std::string> modality_files;  // in the requested modality order
  std::string label_file;                   // empty when absent
  /// Set by discover_cases from the label file's name: `<ID>-seg` (BraTS 2023
  /// naming) is brats2023, anything else brats2021.
  LabelNumbering numbering = LabelNumbering::brats2021;
};

/// Finds case folders below `root` (up to three levels, so HGG/LGG subfolders of
/// 2018/2019 work). A folder counts as a case when it holds its first modality
/// in the BraTS 2018-2021 naming, `<folder name>_<modality>.nii[.gz]`, or in
/// that of BraTS 2023 on, `<folder name>-<modality>.nii[.gz]`, under the
/// modality's name or its alias (modality_alias: t2f for flair, ...); the label
/// is `_seg` or `-seg`. Cases are sorted by id. A case lacking another modality
/// is still returned (the loader reports it).
std::vector<Case> discover_cases(const std::string& root, const std::vector<std::string>& modalities);

struct LoadedCase {
  torch::Tensor image;  // float32 (M, X, Y, Z)
  torch::Tensor label;  // uint8 (R, X, Y, Z), undefined when labels are not read
  std::vector<double> affine;  // 16, row-major
  std::vector<std::int64_t> present;  // 1 per modality read, 0 per one left out (its channel is zeros)
};

/// Largest difference between two modalities' affine entries (mm, or mm per
/// voxel for the rotation and zoom part) that read_case accepts.
constexpr double kAffineTolerance = 1e-3;

/// Reads and checks one case: every modality present (with `allow_missing`,
/// a modality without a file is a channel of zeros, marked in `present`; at
/// least one must exist), same shapes and affines (within kAffineTolerance),
/// finite voxels, labels as labels_to_regions takes them in the case's
/// numbering. Throws std::runtime_error naming the file.
LoadedCase read_case(const Case& c, const std::vector<std::string>& modalities, const std::vector<std::string>& regions,
                     bool labels, bool allow_missing = false);

/// Default modality order, as in the MONAI/SwinUNETR BraTS lists.
const std::vector<std::string>& default_modalities();

/// The name of the same scan in the other BraTS naming: flair <-> t2f,
/// t1ce <-> t1c, t1 <-> t1n, t2 <-> t2w (2018-2021 <-> 2023 on); empty for
/// any other name.
const std::string& modality_alias(const std::string& name);

/// Where `name` (a modality's name in either naming) sits in `modalities`:
/// the index of the channel it names or aliases; modalities.size() when none.
std::size_t modality_index(const std::vector<std::string>& modalities, const std::string& name);

/// Converts a label volume with values {0, 1, 2, 4} (brats2021) or {0, 1, 2,
/// 3} (brats2023) into region channels. Region names: TC = {1, ET}, WT = {1,
/// 2, ET}, ET, NCR = {1}, ED = {2}, where ET is 4 or 3. Throws
/// std::invalid_argument naming the first value outside the numbering's set
/// and how many voxels carry it (with a hint when it is the other numbering's
/// ET), or a value off an integer. Returns uint8 (R, X, Y, Z).
torch::Tensor labels_to_regions(const torch::Tensor& label, const std::vector<std::string>& regions,
                                LabelNumbering numbering = LabelNumbering::brats2021);

/// The inverse of labels_to_regions for thresholded region channels (bool or
/// 0/1, (R, X, Y, Z)): a BraTS label map (uint8 0, 1, 2, 4) painted from the
/// outermost region in: WT and ED as 2, TC and NCR as 1, ET as `et_label` (the
/// order of the released inference script); `et_label` 3 gives BraTS 2023's
/// numbering. Throws std::invalid_argument for a region name labels_to_regions
/// does not know or an `et_label` other than 3 or 4.
torch::Tensor regions_to_labels(const torch::Tensor& regions_mask, const std::vector<std::string>& regions, std::uint8_t et_label = 4);

/// The region names labels_to_regions accepts.
const std::vector<std::string>& region_names();

struct PhantomOptions {
  std::int64_t cases = 8;
  std::int64_t size = 64;  // X and Y; Z is size * 155 / 240 like BraTS
  std::uint64_t seed = 1;
  std::string out;
  std::string template_path;  // ch2bet; empty: the Debian mricron-data path if present
  bool procedural = false;    // ignore any template: nested-ellipsoid head
};

/// Writes phantom cases in the BraTS 2020 layout (`Phantom_001/Phantom_001_flair.nii.gz`,
/// ...; int16 images, uint8 `seg` with labels {0, 1, 2, 4}). Returns the case
/// ids. `progress(i, n)` is called after each case.
std::vector<std::string> write_phantoms(const PhantomOptions& options,
                                        const std::function<void(std::int64_t, std::int64_t)>& progress = {});

/// Converts the cases under `src` into an HDF5 cache at `out` (io/h5cache.h).
/// The first bad case stops the conversion with its name; `out` is then untouched.
void convert_to_cache(const std::string& src, const std::string& out, const std::vector<std::string>& modalities,
                      const std::vector<std::string>& regions, const std::function<void(std::int64_t, std::int64_t)>& progress = {});

/// Reads every case under `root` whole, as a run would (discover_cases with
/// `modalities`; read_case with the label when the case has a label file), and
/// describes the data set: how many cases, with labels, with each tumour
/// region, the naming found, the shapes. Throws std::runtime_error naming how
/// many cases are bad and the first ten with their reasons, or that `root`
/// holds no case. `progress(i, n)` is called after each case.
std::string verify_cases(const std::string& root, const std::vector<std::string>& modalities,
                         const std::function<void(std::int64_t, std::int64_t)>& progress = {});

/// Where the skull-stripped ch2 template from the Debian package mricron-data lives.
std::string default_template_path();

}  // namespace umrflow::brats
