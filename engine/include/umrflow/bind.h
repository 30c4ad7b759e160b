// umrflow/bind.h: parameters declared once and bound to the members they set.
//
// A ParamBindings<T> holds, for each parameter, its ParamSpec (name, type,
// default, range, description: params.h) and the member of T that receives the
// parsed value. The specs drive parsing, errors and docs; apply() then writes
// every value into a T, so no code reads a parameter by its name string:
//
//   ParamBindings<Settings> b;
//   b.bind(&Settings::epochs, param::integer("epochs", 1, "passes over the data").min(1));
//   Params p = parse_params(map, b.specs(), {}, "train", diagnostics);
//   Settings s;
//   b.apply(p, s);
//
// A member's C++ type must match the declared type (bool: boolean; int or
// std::int64_t: integer; float or double: number; std::string: text or choice;
// std::vector of std::int64_t, double or std::string: the list types); bind()
// throws std::invalid_argument otherwise, when the declaration is first made.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "umrflow/params.h"

namespace umrflow {

namespace detail {

/// Reads parameter `name` from `p` as the C++ type M, or throws
/// std::invalid_argument when M cannot hold a parameter of type `type`.
template <class M>
struct ParamSlot;
template <>
struct ParamSlot<bool> {
  static bool fits(ParamType t) { return t == ParamType::boolean; }
  static bool read(const Params& p, const std::string& n) { return p.get_bool(n); }
};
template <>
struct ParamSlot<std::int64_t> {
  static bool fits(ParamType t) { return t == ParamType::integer; }
  static std::int64_t read(const Params& p, const std::string& n) { return p.get_int(n); }
};
template <>
struct ParamSlot<int> {
  static bool fits(ParamType t) { return t == ParamType::integer; }
  static int read(const Params& p, const std::string& n) { return static_cast<int>(p.get_int(n)); }
};
template <>
struct ParamSlot<double> {
  static bool fits(ParamType t) { return t == ParamType::number; }
  static double read(const Params& p, const std::string& n) { return p.get_number(n); }
};
template <>
struct ParamSlot<float> {
  static bool fits(ParamType t) { return t == ParamType::number; }
  static float read(const Params& p, const std::string& n) { return static_cast<float>(p.get_number(n)); }
};
template <>
struct ParamSlot<std::string> {
  static bool fits(ParamType t) { return t == ParamType::text || t == ParamType::choice; }
  static std::string read(const Params& p, const std::string& n) { return p.get_text(n); }
};
template <>
struct ParamSlot<std::vector<std::int64_t>> {
  static bool fits(ParamType t) { return t == ParamType::integers; }
  static std::vector<std::int64_t> read(const Params& p, const std::string& n) { return p.get_ints(n); }
};
template <>
struct ParamSlot<std::vector<double>> {
  static bool fits(ParamType t) { return t == ParamType::numbers; }
  static std::vector<double> read(const Params& p, const std::string& n) { return p.get_numbers(n); }
};
template <>
struct ParamSlot<std::vector<std::string>> {
  static bool fits(ParamType t) { return t == ParamType::texts; }
  static std::vector<std::string> read(const Params& p, const std::string& n) { return p.get_texts(n); }
};

}  // namespace detail

template <class T>
class ParamBindings {
 public:
  /// Declares `spec` and binds it to `member` of T.
  template <class M>
  void bind(M T::*member, ParamSpec spec) {
    check<M>(spec);
    const std::string name = spec.name;
    setters_.push_back([member, name](const Params& p, T& t) { t.*member = detail::ParamSlot<M>::read(p, name); });
    specs_.push_back(std::move(spec));
  }

  /// Declares `spec` and binds it to `member` of the struct `outer` of T (an
  /// options struct that T hands on, e.g. to a torch module it builds).
  template <class O, class M>
  void bind(O T::*outer, M O::*member, ParamSpec spec) {
    check<M>(spec);
    const std::string name = spec.name;
    setters_.push_back([outer, member, name](const Params& p, T& t) { (t.*outer).*member = detail::ParamSlot<M>::read(p, name); });
    specs_.push_back(std::move(spec));
  }

  const std::vector<ParamSpec>& specs() const { return specs_; }

  /// Writes every bound parameter that `values` holds into `target`
  /// (parse_params fills in defaults, so after a clean parse that is all).
  void apply(const Params& values, T& target) const {
    for (std::size_t i = 0; i < specs_.size(); ++i)
      if (values.has(specs_[i].name)) setters_[i](values, target);
  }

 private:
  template <class M>
  static void check(const ParamSpec& spec) {
    if (!detail::ParamSlot<M>::fits(spec.type))
      throw std::invalid_argument("parameter '" + spec.name + "' is declared " + param_type_name(spec.type) +
                                  " but bound to a member of another C++ type");
  }

  std::vector<ParamSpec> specs_;
  std::vector<std::function<void(const Params&, T&)>> setters_;
};

}  // namespace umrflow
