#include <doctest/doctest.h>

#include <utility>

#include "ropekit/core/work_share.hpp"
#include "ropekit/model/sharded_dump.hpp"

using namespace ropekit;
using Range = std::pair<std::size_t, std::size_t>;

namespace {
WorkShare share(std::size_t part, std::size_t parts) {
    WorkShare s;
    s.part = part;
    s.parts = parts;
    return s;
}
}  // namespace

TEST_CASE("ranks share sequences contiguously, sizes differing by at most one") {
    // 7 sequences over 3 ranks: [0, 2), [2, 4), [4, 7)
    CHECK(share(0, 3).sequences(7) == Range{0, 2});
    CHECK(share(1, 3).sequences(7) == Range{2, 2});
    CHECK(share(2, 3).sequences(7) == Range{4, 3});
    // more ranks than sequences: some get none, together they get all
    CHECK(share(0, 3).sequences(2) == Range{0, 0});
    CHECK(share(1, 3).sequences(2) == Range{0, 1});
    CHECK(share(2, 3).sequences(2) == Range{1, 1});
    CHECK(share(0, 1).sequences(5) == Range{0, 5});
}

TEST_CASE("shards are named NAME-IIIII-of-NNNNN beside the output") {
    CHECK(shard_paths("out/dump.h5", 2) ==
          std::vector<std::string>{"out/dump-00000-of-00002.h5", "out/dump-00001-of-00002.h5"});
    CHECK(shard_paths("a.b/dump", 1) == std::vector<std::string>{"a.b/dump-00000-of-00001.h5"});
}
