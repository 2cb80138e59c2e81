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

TEST_CASE("shards of a run: one per rank, or --shard-size shards dealt in contiguous runs") {
    using Starts = std::vector<std::size_t>;
    // No --shard-size: 7 sequences over 3 ranks are 3 shards, rank r writes shard r.
    const ShardPlan per_rank = plan_shards("d.h5", 7, 0, share(2, 3));
    CHECK(per_rank.starts == Starts{0, 2, 4, 7});
    CHECK(per_rank.paths.back() == "d-00002-of-00003.h5");
    CHECK(std::pair{per_rank.begin(), per_rank.end()} == Range{4, 7});
    // --shard-size 2: 7 sequences are shards 2+2+2+1; 2 ranks write shards [0, 2) and [2, 4).
    const ShardPlan sized0 = plan_shards("d.h5", 7, 2, share(0, 2));
    const ShardPlan sized1 = plan_shards("d.h5", 7, 2, share(1, 2));
    CHECK(sized0.starts == Starts{0, 2, 4, 6, 7});
    CHECK(std::pair{sized0.first, sized0.count} == Range{0, 2});
    CHECK(std::pair{sized1.begin(), sized1.end()} == Range{4, 7});
    // Serial --shard-size: every shard is the one part's.
    const ShardPlan serial = plan_shards("d.h5", 5, 2, {});
    CHECK(std::pair{serial.first, serial.count} == Range{0, 3});
    CHECK(std::pair{serial.begin(), serial.end()} == Range{0, 5});
    // 2 sequences over 3 ranks: rank 0 has none and writes no shard; ranks 1 and 2 write 2 shards.
    const ShardPlan none = plan_shards("d.h5", 2, 0, share(0, 3));
    CHECK(none.starts == Starts{0, 1, 2});
    CHECK(none.count == 0);
    CHECK(none.paths.size() == 2);
    const ShardPlan last = plan_shards("d.h5", 2, 0, share(2, 3));
    CHECK(std::pair{last.first, last.count} == Range{1, 1});
    CHECK(std::pair{last.begin(), last.end()} == Range{1, 2});
    // A rank of 3 with 1 shard of 2 sequences gets none: begin == end.
    const ShardPlan idle = plan_shards("d.h5", 2, 2, share(0, 3));
    CHECK(idle.count == 0);
    CHECK(idle.begin() == idle.end());
}
