#include <doctest/doctest.h>

#include <string>

#include "ropekit/analysis/decay.hpp"
#include "ropekit/convert/prope_convert.hpp"
#include "ropekit/core/dtype.hpp"
#include "ropekit/core/enum_names.hpp"
#include "ropekit/dump/dump_schema.hpp"
#include "ropekit/rope/rope.hpp"
#include "test_support.hpp"

using namespace ropekit;
using ropekit::test::error_of;

namespace {

enum class Fruit { apple, pear, plum };
constexpr EnumNames<Fruit, 4> kFruitNames{{{Fruit::apple, "apple"},
                                           {Fruit::pear, "pear"},
                                           {Fruit::plum, "plum"},
                                           {Fruit::apple, "malus"}}};

}  // namespace

TEST_CASE("an enum table spells each value and parses it back") {
    CHECK(std::string(enum_name(kFruitNames, Fruit::pear)) == "pear");
    CHECK(parse_enum(kFruitNames, "plum", "--fruit") == Fruit::plum);
    CHECK(parse_enum(kFruitNames, "malus", "--fruit") == Fruit::apple);   // an alias
    CHECK(std::string(enum_name(kFruitNames, Fruit::apple)) == "apple");  // not the alias
    CHECK(!find_enum(kFruitNames, "Apple"));                              // exact spelling only
    CHECK(enum_choices(kFruitNames) == "apple, pear or plum");
    CHECK(error_of([] { parse_enum(kFruitNames, "kiwi", "--fruit"); }, ExitCode::usage) ==
          "--fruit: unknown value 'kiwi' (expected apple, pear or plum)");
}

TEST_CASE("the tool enums round-trip through their tables and name their option when refused") {
    for (const auto& s : kLayoutNames) CHECK(parse_layout(layout_name(s.value)) == s.value);
    for (const auto& s : kDecayModeNames)
        CHECK(parse_decay_mode(decay_mode_name(s.value)) == s.value);
    for (const auto& s : kPropeEncodingNames)
        CHECK(parse_encoding(encoding_name(s.value)) == s.value);
    for (const auto& s : kInputKindNames) CHECK(parse_input_kind(s.name) == s.value);
    for (const auto& s : kDTypeNames) CHECK(parse_dtype(dtype_name(s.value), "--dtype") == s.value);
    CHECK(decay_mode_name(DecayMode::repeated_gaussian) == "repeated-gaussian");
    CHECK(input_kind_name(InputKind::hdf5) == "h5");
    CHECK(parse_input_kind("hdf5") == InputKind::hdf5);
    CHECK(error_of([] { parse_layout("neox"); }, ExitCode::usage) ==
          "--layout: unknown value 'neox' (expected half or interleaved)");
    CHECK(error_of([] { parse_input_kind("zip"); }, ExitCode::usage) ==
          "--input-kind: unknown value 'zip' (expected hf, gguf or h5)");
}

TEST_CASE("hooks parse from their short and their dataset names") {
    for (const auto& s : kHookNames) {
        CHECK(parse_hook(s.name, "--name") == s.value);
        CHECK(parse_hook(hook_name(s.value), "--name") == s.value);
    }
    CHECK(std::string(hook_name(Hook::scores)) == "hook_attn_scores");
    CHECK(
        parse_hooks("scores,q,hook_q,all", "--what") ==
        std::vector<Hook>{Hook::scores, Hook::q, Hook::k, Hook::rot_q, Hook::rot_k, Hook::pattern});
    CHECK(error_of([] { parse_hook("v", "--name"); }, ExitCode::usage) ==
          "--name: unknown value 'v' (expected q, k, rot_q, rot_k, pattern or scores)");
    CHECK(error_of([] { parse_hooks("q,v", "--what"); }, ExitCode::usage) ==
          "--what: unknown value 'v' (expected q, k, rot_q, rot_k, pattern or scores, or all)");
}
