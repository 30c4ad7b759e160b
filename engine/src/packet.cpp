#include "umrflow/packet.h"

#include <sstream>
#include <stdexcept>

namespace umrflow {

namespace {
std::string key_list(const Packet& p) {
  std::string out;
  for (const auto& [k, t] : p.tensors) out += (out.empty() ? "" : ", ") + k;
  return out.empty() ? "none" : out;
}
}  // namespace

const torch::Tensor& Packet::at(const std::string& key) const {
  auto it = tensors.find(key);
  if (it == tensors.end()) throw std::out_of_range("packet has no key '" + key + "' (keys: " + key_list(*this) + ")");
  return it->second;
}
torch::Tensor& Packet::at(const std::string& key) {
  return const_cast<torch::Tensor&>(static_cast<const Packet*>(this)->at(key));
}

std::string Packet::sample_names() const {
  std::string out;
  for (const auto& s : samples) out += (out.empty() ? "" : ",") + (s.id.empty() ? "#" + std::to_string(s.index) : s.id);
  return out.empty() ? "(none)" : out;
}

Packet collate(const std::vector<Packet>& samples) {
  Packet out;
  if (samples.empty()) return out;
  const Packet& first = samples.front();
  for (const auto& [key, t0] : first.tensors) {
    std::vector<torch::Tensor> parts;
    parts.reserve(samples.size());
    for (const auto& s : samples) {
      auto it = s.tensors.find(key);
      if (it == s.tensors.end())
        throw std::invalid_argument("cannot batch: sample " + s.sample_names() + " lacks key '" + key + "' that " +
                                    first.sample_names() + " has");
      if (it->second.sizes() != t0.sizes() || it->second.scalar_type() != t0.scalar_type()) {
        std::ostringstream msg;
        msg << "cannot batch key '" << key << "': sample " << first.sample_names() << " has shape " << t0.sizes() << " "
            << t0.scalar_type() << " but " << s.sample_names() << " has " << it->second.sizes() << " "
            << it->second.scalar_type();
        throw std::invalid_argument(msg.str());
      }
      parts.push_back(it->second);
    }
    out.tensors[key] = torch::stack(parts);
  }
  for (const auto& s : samples) {
    if (s.tensors.size() != first.tensors.size())
      throw std::invalid_argument("cannot batch: sample " + s.sample_names() + " has keys (" + key_list(s) +
                                  ") but " + first.sample_names() + " has (" + key_list(first) + ")");
    out.samples.insert(out.samples.end(), s.samples.begin(), s.samples.end());
  }
  return out;
}

}  // namespace umrflow
