// modality.h: modality subsets, the orders the UniMRSeg code and paper use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

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

/// How the channels of an image group into modalities: modality k owns
/// count[k] consecutive channels from first[k]. MRI has one channel per
/// modality; RGB-D and RGB-T have [3, 1] (R, G, B, then depth or thermal).
struct ChannelTable {
  std::vector<std::int64_t> first, count;
  std::int64_t modalities() const { return static_cast<std::int64_t>(count.size()); }
  std::int64_t channels() const { return first.empty() ? 0 : first.back() + count.back(); }
};

/// The table of `counts` (the modality nodes' `channels` parameter) for an
/// image of `total` channels; empty counts: one channel per modality. Throws
/// std::runtime_error naming the parameter when the counts do not sum to `total`.
ChannelTable channel_table(const std::vector<std::int64_t>& counts, std::int64_t total);

/// The per-channel mask of a per-modality mask.
std::vector<std::int64_t> channel_mask(const std::vector<std::int64_t>& modality_mask, const ChannelTable& table);

/// The per-modality mask of a per-channel one (a modality is present when its
/// first channel is); a modality whose channels disagree throws std::runtime_error.
std::vector<std::int64_t> modality_mask(const std::vector<std::int64_t>& channel_mask, const ChannelTable& table);

/// `x` with the absent modalities (0 in `mask`, one entry per modality) along
/// `axis` filled: with zeros (x times the channel mask), or, with `copy`, from
/// the first present modality: copied when it has as many channels, repeated
/// when it has one, averaged over its channels when the absent one has one
/// (RGB into a depth slot). Other channel counts, or no present modality,
/// throw std::runtime_error.
torch::Tensor fill_absent(const torch::Tensor& x, const std::vector<std::int64_t>& mask, const ChannelTable& table, std::int64_t axis,
                          bool copy);

}  // namespace umrflow::modality
