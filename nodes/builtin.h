// builtin.h: the node library that ships with umrflow, one family per folder
// of nodes/ named after its type prefix; each registers through one list.
#pragma once

#include "umrflow/registry.h"

namespace umrflow {

/// Registers the engine's own types (batch, call), every built-in node type
/// and the families' verbs.
void register_builtin_nodes(Registry& registry);

namespace nodes {
void register_synthetic_nodes(Registry& registry);    // synthetic/: data sets made on the fly
void register_tensor_nodes(Registry& registry);       // tensor/: rank-agnostic augmentations
void register_channel_mix_nodes(Registry& registry);  // model/: model.channel_mix
void register_loss_nodes(Registry& registry);         // loss/
void register_brats_nodes(Registry& registry);        // brats/: BraTS cases on disk and in the HDF5 cache
void register_volume_nodes(Registry& registry);       // volume/: volume augmentation
void register_modality_nodes(Registry& registry);     // modality/: dropout, shuffle, masking, subsets
void register_unet3d_nodes(Registry& registry);       // unet3d/: encoder and decoder as separate modules
void register_unimrseg_nodes(Registry& registry);     // unimrseg/: the network and its adapters
void register_eval_nodes(Registry& registry);         // eval/: subset metrics and reports
void register_sod_report_node(Registry& registry);    // eval/sod_report.cpp (called by register_eval_nodes)
void register_seg_report_node(Registry& registry);    // eval/seg_report.cpp (called by register_eval_nodes)
void register_image2d_nodes(Registry& registry);      // image2d/: 2D networks (RGB-D, RGB-T)

// Verbs (umrflow/verb.h) of the families' data and formats.
void register_brats_verbs(Registry& registry);  // brats/: synth brats, convert brats, split
void register_predict_verb(Registry& registry); // brats/predict_verb.cpp: predict
void register_image2d_verbs(Registry& registry);  // image2d/: synth rgbd, synth rgbt
void register_io_verbs(Registry& registry);     // io/: weights export|import|list, verify
void register_verify_verb(Registry& registry);  // io/verify_verb.cpp (called by register_io_verbs)
}  // namespace nodes

}  // namespace umrflow
