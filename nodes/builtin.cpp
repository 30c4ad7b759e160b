#include "builtin.h"

namespace umrflow {

void register_builtin_nodes(Registry& registry) {
  register_engine_nodes(registry);
  nodes::register_synthetic_nodes(registry);
  nodes::register_tensor_nodes(registry);
  nodes::register_channel_mix_nodes(registry);
  nodes::register_loss_nodes(registry);
  nodes::register_brats_nodes(registry);
  nodes::register_volume_nodes(registry);
  nodes::register_modality_nodes(registry);
  nodes::register_unet3d_nodes(registry);
  nodes::register_unimrseg_nodes(registry);
  nodes::register_eval_nodes(registry);
  nodes::register_image2d_nodes(registry);
  nodes::register_brats_verbs(registry);
  nodes::register_predict_verb(registry);
  nodes::register_image2d_verbs(registry);
  nodes::register_io_verbs(registry);
}

}  // namespace umrflow
