// builtin.h: the node library that ships with umrflow.
#pragma once

#include "umrflow/registry.h"

namespace umrflow {

/// Registers the engine's own types (batch, call) and every built-in node type.
void register_builtin_nodes(Registry& registry);

namespace nodes {
void register_demo_nodes(Registry& registry);  // demo/: synthetic tensors and small models
void register_loss_nodes(Registry& registry);  // loss/
void register_unimrseg_loss_nodes(Registry& registry);  // loss/: Dice, SSIM, L1, NT-Xent
void register_brats_nodes(Registry& registry);  // brats/: BraTS cases on disk
void register_brats_h5_nodes(Registry& registry);  // brats/: the HDF5 cache
void register_transform_nodes(Registry& registry);  // transforms/: volume augmentation
void register_modality_nodes(Registry& registry);  // modality/: dropout, shuffle, masking, subsets
void register_model_nodes(Registry& registry);  // model/: the UniMRSeg network
void register_model_part_nodes(Registry& registry);  // model/: encoder, decoder and adapters as separate modules
void register_eval_nodes(Registry& registry);  // eval/: subset metrics and reports
}  // namespace nodes

}  // namespace umrflow
