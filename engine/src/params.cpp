#include "umrflow/params.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include "umrflow/doc.h"

namespace umrflow {

const char* param_type_name(ParamType type) {
  switch (type) {
    case ParamType::boolean: return "bool";
    case ParamType::integer: return "int";
    case ParamType::number: return "float";
    case ParamType::text: return "string";
    case ParamType::choice: return "choice";
    case ParamType::integers: return "list of int";
    case ParamType::numbers: return "list of float";
    case ParamType::texts: return "list of string";
  }
  return "?";
}

namespace {
std::string fmt_number(double v) {
  std::ostringstream s;
  s.precision(10);
  s << v;
  std::string out = s.str();
  if (out.find_first_of(".einn") == std::string::npos) out += ".0";
  return out;
}
template <typename T, typename F>
std::string fmt_list(const std::vector<T>& v, F f) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + f(v[i]);
  return out + "]";
}
std::string fmt_bound(double v) {
  if (v == std::floor(v) && std::abs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  std::ostringstream s;
  s << v;
  return s.str();
}
}  // namespace

std::string format_param_value(const ParamValue& value) {
  struct V {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return fmt_number(d); }
    std::string operator()(const std::string& s) const { return s.empty() ? "\"\"" : s; }
    std::string operator()(const std::vector<std::int64_t>& v) const {
      return fmt_list(v, [](std::int64_t i) { return std::to_string(i); });
    }
    std::string operator()(const std::vector<double>& v) const { return fmt_list(v, fmt_number); }
    std::string operator()(const std::vector<std::string>& v) const {
      return fmt_list(v, [](const std::string& s) { return s; });
    }
  };
  return std::visit(V{}, value);
}

std::string ParamSpec::constraint_text() const {
  std::string out;
  const bool list = type == ParamType::integers || type == ParamType::numbers || type == ParamType::texts;
  if (list) {
    out = "list of ";
    if (list_length) out += std::to_string(*list_length) + " ";
    out += type == ParamType::integers ? "int" : type == ParamType::numbers ? "float" : "string";
  } else if (type == ParamType::choice) {
    out = "one of ";
    for (std::size_t i = 0; i < choices.size(); ++i) out += (i ? "|" : "") + choices[i];
    return out;
  } else {
    out = param_type_name(type);
  }
  if (minimum && maximum) out += " in [" + fmt_bound(*minimum) + ", " + fmt_bound(*maximum) + "]";
  else if (minimum) out += " >= " + fmt_bound(*minimum);
  else if (maximum) out += " <= " + fmt_bound(*maximum);
  return out;
}

namespace param {
namespace {
ParamSpec make(std::string name, ParamType type, std::optional<ParamValue> def, std::string description) {
  ParamSpec s;
  s.name = std::move(name);
  s.type = type;
  s.default_value = std::move(def);
  s.description = std::move(description);
  return s;
}
template <typename T>
std::optional<ParamValue> opt(const std::optional<T>& v) {
  return v ? std::optional<ParamValue>(*v) : std::nullopt;
}
}  // namespace
ParamSpec boolean(std::string name, bool def, std::string description) {
  return make(std::move(name), ParamType::boolean, def, std::move(description));
}
ParamSpec integer(std::string name, std::optional<std::int64_t> def, std::string description) {
  return make(std::move(name), ParamType::integer, opt(def), std::move(description));
}
ParamSpec number(std::string name, std::optional<double> def, std::string description) {
  return make(std::move(name), ParamType::number, opt(def), std::move(description));
}
ParamSpec text(std::string name, std::optional<std::string> def, std::string description) {
  return make(std::move(name), ParamType::text, opt(def), std::move(description));
}
ParamSpec choice(std::string name, std::string def, std::vector<std::string> options, std::string description) {
  ParamSpec s = make(std::move(name), ParamType::choice, std::move(def), std::move(description));
  s.choices = std::move(options);
  return s;
}
ParamSpec integers(std::string name, std::optional<std::vector<std::int64_t>> def, std::string description) {
  return make(std::move(name), ParamType::integers, opt(def), std::move(description));
}
ParamSpec numbers(std::string name, std::optional<std::vector<double>> def, std::string description) {
  return make(std::move(name), ParamType::numbers, opt(def), std::move(description));
}
ParamSpec texts(std::string name, std::optional<std::vector<std::string>> def, std::string description) {
  return make(std::move(name), ParamType::texts, opt(def), std::move(description));
}
}  // namespace param

// ---- typed access ---------------------------------------------------------

const ParamValue& Params::value(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw std::logic_error("parameter '" + name + "' was not declared by this node");
  return it->second;
}

namespace {
template <typename T>
const T& typed(const ParamValue& v, const std::string& name, const char* want) {
  if (const T* p = std::get_if<T>(&v)) return *p;
  throw std::logic_error("parameter '" + name + "' is not a " + want);
}
}  // namespace

bool Params::get_bool(const std::string& n) const { return typed<bool>(value(n), n, "bool"); }
std::int64_t Params::get_int(const std::string& n) const { return typed<std::int64_t>(value(n), n, "int"); }
double Params::get_number(const std::string& n) const {
  const ParamValue& v = value(n);
  if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  return typed<double>(v, n, "float");
}
const std::string& Params::get_text(const std::string& n) const { return typed<std::string>(value(n), n, "string"); }
const std::vector<std::int64_t>& Params::get_ints(const std::string& n) const {
  return typed<std::vector<std::int64_t>>(value(n), n, "list of int");
}
std::vector<double> Params::get_numbers(const std::string& n) const {
  const ParamValue& v = value(n);
  if (const auto* i = std::get_if<std::vector<std::int64_t>>(&v)) return {i->begin(), i->end()};
  return typed<std::vector<double>>(v, n, "list of float");
}
const std::vector<std::string>& Params::get_texts(const std::string& n) const {
  return typed<std::vector<std::string>>(value(n), n, "list of string");
}
const Location& Params::where(const std::string& name) const {
  static const Location none;
  auto it = where_.find(name);
  return it == where_.end() ? none : it->second;
}
void Params::set(const std::string& name, ParamValue value, Location where) {
  values_[name] = std::move(value);
  where_[name] = std::move(where);
}

// ---- parsing ----------------------------------------------------------------

namespace {

bool parse_bool(const std::string& s, bool& out) {
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(), ::tolower);
  if (l == "true" || l == "yes" || l == "on") return out = true, true;
  if (l == "false" || l == "no" || l == "off") return out = false, true;
  return false;
}
bool parse_int(const std::string& s, std::int64_t& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno || *end) return false;
  out = v;
  return true;
}
bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (errno || *end || !std::isfinite(v)) return false;
  out = v;
  return true;
}

struct ParseCtx {
  const ParamSpec& spec;
  const std::string& owner;
  Diagnostics& diags;
  std::string prefix() const { return owner + ": parameter '" + spec.name + "' "; }
};

bool check_range(const ParseCtx& c, double v, const Location& where) {
  if ((c.spec.minimum && v < *c.spec.minimum) || (c.spec.maximum && v > *c.spec.maximum)) {
    std::ostringstream s;
    s << v;
    c.diags.error(where, c.prefix() + "is " + s.str() + ", outside its range (" + c.spec.constraint_text() + ")");
    return false;
  }
  return true;
}

bool scalar_of(const ParseCtx& c, const Doc& d, ParamType t, ParamValue& out) {
  const char* want = param_type_name(t);
  if (!d.is_scalar()) {
    c.diags.error(d.where(), c.prefix() + "expects " + (t == c.spec.type ? c.spec.constraint_text() : std::string(want)) +
                                 ", got a " + d.kind_name());
    return false;
  }
  const std::string& s = d.text();
  switch (t) {
    case ParamType::boolean: {
      bool b;
      if (d.quoted() || !parse_bool(s, b)) break;
      out = b;
      return true;
    }
    case ParamType::integer: {
      std::int64_t i;
      if (d.quoted() || !parse_int(s, i)) break;
      out = i;
      return check_range(c, static_cast<double>(i), d.where());
    }
    case ParamType::number: {
      double v;
      if (d.quoted() || !parse_double(s, v)) break;
      out = v;
      return check_range(c, v, d.where());
    }
    case ParamType::text:
      out = s;
      return true;
    case ParamType::choice:
      if (std::find(c.spec.choices.begin(), c.spec.choices.end(), s) == c.spec.choices.end()) {
        c.diags.error(d.where(), c.prefix() + "is '" + s + "', expected " + c.spec.constraint_text() +
                                     did_you_mean(s, c.spec.choices));
        return false;
      }
      out = s;
      return true;
    default:
      break;
  }
  c.diags.error(d.where(), c.prefix() + "expects " + c.spec.constraint_text() + ", got '" + s + "'");
  return false;
}

bool parse_value(const ParseCtx& c, const Doc& d, ParamValue& out) {
  const ParamType t = c.spec.type;
  if (t != ParamType::integers && t != ParamType::numbers && t != ParamType::texts) return scalar_of(c, d, t, out);
  // A scalar where a list is expected is accepted as a one-element list only
  // when the list has no fixed length; otherwise say what is expected.
  std::vector<const Doc*> items;
  if (d.is_sequence())
    for (const auto& i : d.items()) items.push_back(&i);
  else {
    c.diags.error(d.where(), c.prefix() + "expects a " + c.spec.constraint_text() + " such as [1, 2, 3], got a " +
                                 d.kind_name());
    return false;
  }
  if (c.spec.list_length && items.size() != *c.spec.list_length) {
    c.diags.error(d.where(), c.prefix() + "expects " + std::to_string(*c.spec.list_length) + " values, got " +
                                 std::to_string(items.size()));
    return false;
  }
  const ParamType et = t == ParamType::integers ? ParamType::integer : t == ParamType::numbers ? ParamType::number : ParamType::text;
  std::vector<std::int64_t> ints;
  std::vector<double> nums;
  std::vector<std::string> texts;
  bool ok = true;
  for (const Doc* i : items) {
    ParamValue v;
    if (!scalar_of(c, *i, et, v)) {
      ok = false;
      continue;
    }
    if (et == ParamType::integer) ints.push_back(std::get<std::int64_t>(v));
    else if (et == ParamType::number) nums.push_back(std::get<double>(v));
    else texts.push_back(std::get<std::string>(v));
  }
  if (!ok) return false;
  if (t == ParamType::integers) out = ints;
  else if (t == ParamType::numbers) out = nums;
  else out = texts;
  return true;
}

}  // namespace

Params parse_params(const Doc& node_map, const std::vector<ParamSpec>& specs, const std::vector<std::string>& reserved,
                    const std::string& owner, Diagnostics& diags) {
  Params out;
  std::vector<std::string> names;
  for (const auto& s : specs) names.push_back(s.name);
  std::vector<std::string> valid = names;
  valid.insert(valid.end(), reserved.begin(), reserved.end());
  for (const auto& e : node_map.entries()) {
    if (std::find(reserved.begin(), reserved.end(), e.key) != reserved.end()) continue;
    auto spec = std::find_if(specs.begin(), specs.end(), [&](const ParamSpec& s) { return s.name == e.key; });
    if (spec == specs.end()) {
      std::string hint = did_you_mean(e.key, valid);
      if (hint.empty()) {
        hint = names.empty() ? " (it takes no parameters)" : " (valid: ";
        if (!names.empty()) {
          for (std::size_t i = 0; i < names.size(); ++i) hint += (i ? ", " : "") + names[i];
          hint += ")";
        }
      }
      diags.error(e.key_where, owner + ": unknown parameter '" + e.key + "'" + hint);
      continue;
    }
    ParamValue v;
    ParseCtx c{*spec, owner, diags};
    if (parse_value(c, e.value, v)) out.set(spec->name, std::move(v), e.value.where());
  }
  for (const auto& s : specs) {
    if (out.has(s.name)) continue;
    if (s.required()) {
      // Only report "missing" when the key is absent, not when it was present but invalid.
      if (!node_map.find(s.name))
        diags.error(node_map.where(), owner + ": missing required parameter '" + s.name + "' (" + s.constraint_text() +
                                          ": " + s.description + ")");
      continue;
    }
    if (!node_map.find(s.name)) out.set(s.name, *s.default_value, node_map.where());
  }
  return out;
}

}  // namespace umrflow
