#include "verbs.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <variant>

namespace umrflow::cli {

namespace {

/// A number's bounds as CLI11 checks them, told the way the declaration
/// gives them: "in [1, 100]", ">= 0" (CLI::Range with an open side printed
/// 1.79769e+308, in full in its error messages).
CLI::Validator bounds_check(std::optional<double> minimum, std::optional<double> maximum) {
  const auto shown = [](double v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  const std::string text = minimum && maximum ? "in [" + shown(*minimum) + ", " + shown(*maximum) + "]"
                           : minimum          ? ">= " + shown(*minimum)
                                              : "<= " + shown(*maximum);
  return CLI::Validator(
      [=](std::string& value) -> std::string {
        // strtold reads what CLI11's own conversions read (hex, "inf"), so none of those passes unchecked.
        char* end = nullptr;
        errno = 0;
        const long double v = std::strtold(value.c_str(), &end);
        while (end && std::isspace(static_cast<unsigned char>(*end))) ++end;
        if (end == value.c_str() || !end || *end != '\0') return {};  // not a number: the option's own type check says so
        if (std::isnan(v) || (minimum && v < *minimum) || (maximum && v > *maximum)) return "value " + value + " is not " + text;
        return {};
      },
      text);
}

using Storage = std::variant<bool, std::int64_t, double, std::string, std::vector<std::int64_t>, std::vector<double>,
                             std::vector<std::string>>;

bool listed(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string help_text(const ParamSpec& p) {
  std::string text = p.description;
  if (p.type == ParamType::choice) text += " (one of " + [&] {
      std::string c;
      for (const auto& x : p.choices) c += (c.empty() ? "" : ", ") + x;
      return c;
    }() + ")";
  return text;
}

}  // namespace

struct VerbCommands::Bound {
  const VerbSpec* spec = nullptr;
  CLI::App* app = nullptr;
  struct Slot {
    const ParamSpec* param = nullptr;
    Storage value;
    CLI::Option* option = nullptr;
  };
  std::vector<std::unique_ptr<Slot>> slots;
};

VerbCommands::VerbCommands(CLI::App& app, Registry& registry) : registry_(registry) {
  for (const VerbSpec& verb : registry.verbs()) {
    CLI::App* parent = &app;
    if (verb.path.size() == 2) {
      CLI::App* group = nullptr;
      for (CLI::App* s : app.get_subcommands([](CLI::App*) { return true; }))
        if (s->get_name() == verb.path[0]) group = s;
      if (!group) {
        group = app.add_subcommand(verb.path[0], verb.group_summary);
        group->require_subcommand(1);
      }
      parent = group;
    }
    auto b = std::make_unique<Bound>();
    b->spec = &verb;
    b->app = parent->add_subcommand(verb.path.back(), verb.summary);
    if (!verb.footer.empty()) b->app->footer(verb.footer);
    for (const ParamSpec& p : verb.options) {
      auto slot = std::make_unique<Bound::Slot>();
      slot->param = &p;
      const bool positional = listed(verb.positional, p.name);
      std::string name = positional ? p.name : "--" + p.name;
      for (const auto& [option, alias] : verb.short_names)
        if (option == p.name) name = alias + "," + name;
      const std::string help = help_text(p);
      CLI::Option* o = nullptr;
      switch (p.type) {
        case ParamType::boolean:
          slot->value = p.default_value ? std::get<bool>(*p.default_value) : false;
          o = b->app->add_flag(name, std::get<bool>(slot->value), help);
          break;
        case ParamType::integer:
          slot->value = p.default_value ? std::get<std::int64_t>(*p.default_value) : std::int64_t{0};
          o = b->app->add_option(name, std::get<std::int64_t>(slot->value), help);
          break;
        case ParamType::number:
          slot->value = p.default_value ? std::get<double>(*p.default_value) : 0.0;
          o = b->app->add_option(name, std::get<double>(slot->value), help);
          break;
        case ParamType::text:
        case ParamType::choice:
          slot->value = p.default_value ? std::get<std::string>(*p.default_value) : std::string();
          o = b->app->add_option(name, std::get<std::string>(slot->value), help);
          if (p.type == ParamType::choice) o->check(CLI::IsMember(p.choices));
          if (listed(verb.existing_files, p.name)) o->check(CLI::ExistingPath);
          break;
        case ParamType::integers:
          slot->value = p.default_value ? std::get<std::vector<std::int64_t>>(*p.default_value) : std::vector<std::int64_t>{};
          o = b->app->add_option(name, std::get<std::vector<std::int64_t>>(slot->value), help);
          break;
        case ParamType::numbers:
          slot->value = p.default_value ? std::get<std::vector<double>>(*p.default_value) : std::vector<double>{};
          o = b->app->add_option(name, std::get<std::vector<double>>(slot->value), help);
          break;
        case ParamType::texts:
          slot->value = p.default_value ? std::get<std::vector<std::string>>(*p.default_value) : std::vector<std::string>{};
          o = b->app->add_option(name, std::get<std::vector<std::string>>(slot->value), help);
          if (listed(verb.existing_files, p.name)) o->check(CLI::ExistingPath);
          break;
      }
      if (p.type != ParamType::boolean && p.default_value && !positional) {
        const std::string shown = format_param_value(*p.default_value);
        if (shown != "\"\"" && shown != "[]") o->default_str(shown);
      }
      if (p.minimum || p.maximum)
        o->check(bounds_check(p.minimum, p.maximum));
      if (listed(verb.comma_lists, p.name)) o->delimiter(',');
      if (p.required()) o->required();
      slot->option = o;
      b->slots.push_back(std::move(slot));
    }
    bound_.push_back(std::move(b));
  }
}

VerbCommands::~VerbCommands() = default;

void check_output_files(const VerbSpec& verb, const Params& params) {
  namespace fs = std::filesystem;
  const auto declares = [&](const std::string& name, ParamType type) {
    return std::any_of(verb.options.begin(), verb.options.end(), [&](const ParamSpec& p) { return p.name == name && p.type == type; });
  };
  const bool guarded = declares("overwrite", ParamType::boolean);
  const bool may_overwrite = guarded && params.has("overwrite") && params.get_bool("overwrite");
  std::error_code ec;
  // The given path of option `name` when something is there already, else "".
  const auto existing = [&](const std::string& name) {
    const std::string out = params.has(name) ? params.get_text(name) : std::string();
    return !out.empty() && fs::exists(out, ec) ? out : std::string();
  };
  for (const auto& name : verb.output_files) {
    const std::string out = existing(name);
    if (out.empty()) continue;
    for (const auto& input : verb.existing_files) {
      if (!params.has(input)) continue;
      const ParamValue& v = params.value(input);
      const std::vector<std::string> paths =
          std::holds_alternative<std::string>(v) ? std::vector<std::string>{std::get<std::string>(v)} : std::get<std::vector<std::string>>(v);
      for (const auto& in : paths)
        if (fs::equivalent(in, out, ec))
          throw std::runtime_error(name + " '" + out + "' is the " + input + " this command reads; write to another file");
    }
    if (!fs::is_regular_file(out, ec))
      throw std::runtime_error(name + " '" + out + "' exists and is no regular file (a folder, device or FIFO); give a file path");
    if (guarded && !may_overwrite) throw std::runtime_error(name + " '" + out + "' exists; pass --overwrite to replace it");
  }
  for (const auto& name : verb.output_folders) {
    const std::string out = existing(name);
    if (out.empty()) continue;
    if (!fs::is_directory(out, ec)) throw std::runtime_error(name + " '" + out + "' is a file, not a folder; give a folder path");
    if (!fs::is_empty(out, ec) && !may_overwrite)
      throw std::runtime_error(name + " '" + out + "' is not empty; write into a new folder, or pass --overwrite to write over it "
                               "(files there that this command does not write stay)");
  }
}

int VerbCommands::run() {
  for (const auto& b : bound_) {
    if (!b->app->parsed()) continue;
    Params params;
    const Location where{"<command line>", 0, 0};
    for (const auto& s : b->slots) {
      if (s->option->count() == 0 && !s->param->default_value) continue;
      std::visit([&](const auto& v) { params.set(s->param->name, ParamValue(v), where); }, s->value);
    }
    check_output_files(*b->spec, params);
    return b->spec->run(VerbCall{params, registry_});
  }
  throw std::logic_error("no verb was chosen");
}

std::vector<std::string> plugins_in_arguments(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strcmp(a, "--") == 0) break;
    if (std::strcmp(a, "--plugin") == 0 && i + 1 < argc) out.push_back(argv[++i]);
    else if (std::strncmp(a, "--plugin=", 9) == 0) out.push_back(a + 9);
  }
  return out;
}

}  // namespace umrflow::cli
