// modality.h: modality subsets, the orders the UniMRSeg code and paper use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace umrflow::modality {

/// Present-modality masks (1 = present) of all 2^M - 1 non-empty subsets.
///
/// "code": the training/validation order of the released code: the complete
/// set first, then subsets by the number of zeroed channels, zeroed index sets
/// in lexicographic order ([0], [1], ..., [0,1], [0,2], ...).
///
/// "paper": the row order of the paper's tables (and RFNet/mmFormer), for
/// modalities named flair, t1ce, t1, t2 in any channel order: t2, t1ce, t1,
/// flair, t1ce+t2, t1ce+t1, flair+t1, t1+t2, flair+t2, flair+t1ce,
/// flair+t1ce+t1, flair+t1+t2, flair+t1ce+t2, t1ce+t1+t2, all four. Throws
/// std::invalid_argument for other modality names.
std::vector<std::vector<std::int64_t>> subset_masks(const std::vector<std::string>& modalities, const std::string& order);

/// "flair+t1ce" for a mask.
std::string subset_name(const std::vector<std::int64_t>& mask, const std::vector<std::string>& modalities);

}  // namespace umrflow::modality
