#include <doctest/doctest.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/index_spec.hpp"

using namespace ropekit;
using V = std::vector<std::size_t>;

TEST_CASE("index specs select what a person means") {
    CHECK(parse_index_spec("all", 3, "--layers") == V{0, 1, 2});
    CHECK(parse_index_spec("2", 5, "--layers") == V{2});
    CHECK(parse_index_spec("0-2,4", 5, "--layers") == V{0, 1, 2, 4});
    CHECK(parse_index_spec("4,1,1", 5, "--layers") == V{1, 4});
    CHECK(parse_index_spec("-1", 5, "--layers") == V{4});
    CHECK(parse_index_spec("-2", 5, "--layers") == V{3});
}

TEST_CASE("bad index specs are usage errors naming the option") {
    for (const char* bad : {"5", "x", "1-", "3-1", "-6", "-0", "1,,2", "1.5"}) {
        CAPTURE(bad);
        try {
            parse_index_spec(bad, 5, "--layers");
            FAIL("accepted");
        } catch (const Error& e) {
            CHECK(e.code() == ExitCode::usage);
            CHECK(std::string(e.what()).rfind("--layers: ", 0) == 0);
        }
    }
}

TEST_CASE("split_list keeps empty items so callers can name them") {
    using S = std::vector<std::string>;
    CHECK(split_list("a") == S{"a"});
    CHECK(split_list("") == S{""});
    CHECK(split_list("q,k,,rot_q") == S{"q", "k", "", "rot_q"});
    CHECK(split_list(",") == S{"", ""});
    CHECK(split_list("1-4:2;7", ';') == S{"1-4:2", "7"});
}
