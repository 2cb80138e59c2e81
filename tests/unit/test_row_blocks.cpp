#include <doctest/doctest.h>

#include "ropekit/core/error.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/hdf5/row_blocks.hpp"
#include "test_support.hpp"

using namespace ropekit;

namespace {

// A [3, 5, 2, 4] float dataset whose element at flat index i holds i: row r (leading axes
// flattened) is 4r .. 4r + 3.
struct CountingFile {
    test::TempDir dir;
    std::string path = dir.file("rows.h5");
    CountingFile() {
        Tensor<float> t({3, 5, 2, 4});
        for (std::size_t i = 0; i < t.size(); ++i) t.data[i] = static_cast<float>(i);
        auto out = H5Output::create(path, {});
        out.write("x", t);
        Tensor<float> one({4});
        for (std::size_t i = 0; i < 4; ++i) one.data[i] = static_cast<float>(10 + i);
        out.write("v", one);
        out.commit("test", "test");
    }
};

void check_rows(const float* rows, std::size_t first, std::size_t count) {
    for (std::size_t i = 0; i < count * 4; ++i) {
        REQUIRE(rows[i] == static_cast<float>(first * 4 + i));
    }
}

}  // namespace

TEST_CASE("RowBlocks streams every row once, in order, for any block size") {
    CountingFile f;
    const H5Input in = H5Input::open(f.path);
    for (std::size_t block : {1, 2, 3, 7, 10, 11, 30, 100}) {
        CAPTURE(block);
        RowBlocks rows(in, "x", block);
        CHECK(rows.rows() == 30);
        CHECK(rows.width() == 4);
        std::vector<float> buf(rows.block_capacity() * 4);
        std::size_t done = 0;
        while (std::size_t n = rows.next(buf.data())) {
            CHECK(n <= rows.block_capacity());
            check_rows(buf.data(), done, n);
            done += n;
        }
        CHECK(done == 30);
    }
    RowBlocks single(in, "v", 8);
    std::vector<float> buf(single.block_capacity() * 4);
    CHECK(single.next(buf.data()) == 1);
    CHECK(buf[0] == 10.0f);
    CHECK(single.next(buf.data()) == 0);
}

TEST_CASE("read_rows reads any contiguous range; read_row one row") {
    CountingFile f;
    const H5Input in = H5Input::open(f.path);
    for (std::size_t first = 0; first < 30; first += 3) {
        for (std::size_t count : {1, 2, 5, 9, 17}) {
            if (first + count > 30) continue;
            CAPTURE(first);
            CAPTURE(count);
            std::vector<float> buf(count * 4);
            read_rows(in, "x", first, count, buf.data());
            check_rows(buf.data(), first, count);
        }
    }
    const auto row = read_row(in, "x", 13, 4);
    CHECK(row == std::vector<double>{52, 53, 54, 55});
    CHECK_THROWS_AS(read_row(in, "x", 30, 4), Error);
    CHECK_THROWS_AS(read_row(in, "x", 0, 8), Error);
}
