// predict.h: the cases `umrflow predict` segments, as a list file that its
// graph's source (brats.scans) and writer (brats.write_labels) both read.
//
// The list is YAML, one entry per case; a modality without a file is absent
// (its channel is zeros, as in training's modality dropout):
//
//   modalities: [flair, t1ce, t1, t2]
//   cases:
//     - id: Patient_007
//       out: /data/out/Patient_007.nii.gz
//       flair: /data/in/Patient_007_flair.nii.gz
//       t1ce: /data/in/Patient_007_t1ce.nii.gz
#pragma once

#include <string>
#include <vector>

namespace umrflow::brats {

struct PredictCase {
  std::string id;
  std::vector<std::string> files;  // one per modality, in list order; empty: absent
  std::string out;                 // the label map to write (.nii or .nii.gz)
};

struct PredictList {
  std::vector<std::string> modalities;
  std::vector<PredictCase> cases;
};

/// `path` without its `.nii.gz` or `.nii` ending (unchanged without one); the
/// probability maps of `seg.nii.gz` are `seg_<REGION>.nii.gz`.
std::string nifti_stem(const std::string& path);

/// Writes the list (atomically).
void write_predict_list(const std::string& path, const PredictList& list);

/// Reads a list; throws std::runtime_error naming the file and the line of a
/// problem (a case without id, out or any modality file, an unknown modality
/// key, a duplicate id or output).
PredictList read_predict_list(const std::string& path);

/// Finds cases below `folder` (three levels deep) whose files match `pattern`,
/// in which `{id}` and `{modality}` stand for the case id and one of
/// `modalities` (default pattern `{id}_{modality}.nii.gz`, which also matches
/// `.nii`; this finds the BraTS layout `ID/ID_flair.nii.gz` and flat folders).
/// Cases are sorted by id; each gets `out` = `out_folder/<id>.nii.gz`. Throws
/// when the pattern lacks `{id}` or `{modality}`, or no file matches.
std::vector<PredictCase> find_predict_cases(const std::string& folder, const std::string& pattern,
                                            const std::vector<std::string>& modalities, const std::string& out_folder);

}  // namespace umrflow::brats
