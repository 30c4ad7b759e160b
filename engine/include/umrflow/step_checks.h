// umrflow/step_checks.h: checks of step-plane values that need the host to
// read them, without making the step wait for the device.
//
// A step node that validates its inputs' values (a label outside the classes,
// a value that is not finite) has to read a result back to the host, and on
// an accelerator that read waits for every kernel queued so far. A node calls
// check_on_host() instead of reading `failed` itself:
//
//   const torch::Tensor bad = (cls < 0) | (cls >= classes);
//   check_on_host(bad.any(), [bad, raw] { return "label " + ... + " is outside ..."; });
//   cls = cls.masked_fill(bad, -100);  // what the step computes meanwhile must stay safe
//
// On the CPU (and outside a step) the flag is read at once and a failed check
// throws std::runtime_error(message()), which the engine reports naming the
// node and the batch's samples. On an accelerator the engine keeps the check
// and reads every kept flag in one transfer at the next step that logs its
// loss (execution.log_every), at the end of the epoch and before anything is
// written; a failed one is then reported as a NodeError naming the node, the
// batch's samples and its batch index. Until then the node's outputs must be
// harmless (no device-side assertion, no NaN), which is why it also masks
// what it rejects. `message` runs only for a failed check and may read
// tensors it captured.
#pragma once

#include <functional>
#include <string>

#include <torch/types.h>

namespace umrflow {

/// `failed`: a boolean (or 0/1) tensor of any shape; the check fails when any
/// element is true.
void check_on_host(const torch::Tensor& failed, std::function<std::string()> message);

}  // namespace umrflow
