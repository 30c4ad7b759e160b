#include "builtin.h"

namespace umrflow {

void register_builtin_nodes(Registry& registry) {
  register_engine_nodes(registry);
  nodes::register_demo_nodes(registry);
  nodes::register_loss_nodes(registry);
  nodes::register_unimrseg_loss_nodes(registry);
  nodes::register_brats_nodes(registry);
  nodes::register_brats_h5_nodes(registry);
  nodes::register_transform_nodes(registry);
  nodes::register_modality_nodes(registry);
  nodes::register_model_nodes(registry);
  nodes::register_model_part_nodes(registry);
  nodes::register_eval_nodes(registry);
}

}  // namespace umrflow
