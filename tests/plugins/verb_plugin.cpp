// A plugin that adds a verb, `umrflow greet`, to prove plugins extend the CLI
// the way node families do.
#include <cstdio>

#include <umrflow/plugin.h>

namespace {

void register_verbs(umrflow::Registry& registry) {
  umrflow::VerbSpec v;
  v.path = {"greet"};
  v.summary = "prints a greeting (a test plugin's verb)";
  v.options = {umrflow::param::text("name", "world", "who is greeted"),
               umrflow::param::integer("times", 1, "how many greetings").range(1, 3)};
  v.run = [](const umrflow::VerbCall& c) {
    for (std::int64_t i = 0; i < c.options.get_int("times"); ++i) std::printf("hello, %s\n", c.options.get_text("name").c_str());
    return 7;
  };
  registry.add_verb(std::move(v));
}

}  // namespace

UMRFLOW_PLUGIN("greeter", register_verbs)
