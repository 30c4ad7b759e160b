// state_dict.h: PyTorch state dicts in and out (`umrflow weights`).
//
// write_state_dict() writes what Python's `torch.load` returns as a dict of
// tensors, in the given order. read_state_dict() reads what Python's
// `torch.save(model.state_dict(), f)` writes (an OrderedDict, which libtorch's
// own pickle_load refuses), also a plain dict, a dict nesting the weights under
// `state_dict`, `model` or `net`, and keys prefixed by `module.` (DataParallel)
// or `backbone.`. It runs a small pickle interpreter over the zip archive's
// data.pkl that knows exactly the opcodes and globals torch.save emits for
// tensors and (ordered) dicts; anything else is an error naming it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace umrflow::io {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// Writes `tensors` (CPU copies) as a torch.save-compatible zip archive, atomically.
void write_state_dict(const std::string& path, const NamedTensors& tensors);

/// Reads a state dict saved by Python; strips `module.`/`backbone.` prefixes
/// and unwraps a nested `state_dict`/`model`/`net` entry. Throws with the file
/// name and the reason for anything that is not a dict of tensors.
NamedTensors read_state_dict(const std::string& path);

/// True when `path` is a umrflow run checkpoint (a libtorch archive), false for
/// anything else (a PyTorch state dict). Damage to the zip container is an
/// error naming the file. Defined with the `weights` verbs.
bool is_run_checkpoint(const std::string& path);

/// Writes the state dict at `state_dict` as a run checkpoint at `out` whose
/// tensors are `MODULE.<key>`, for a module's `init: {from: out}`. Returns
/// the number of tensors. Defined with the `weights` verbs.
std::size_t import_state_dict(const std::string& state_dict, const std::string& out, const std::string& module);

}  // namespace umrflow::io
