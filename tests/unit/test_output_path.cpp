#include <doctest/doctest.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "ropekit/core/output_path.hpp"
#include "test_support.hpp"

using namespace ropekit;
using namespace ropekit::test;

namespace {

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_with(const std::string& path, const std::string& text) {
    std::FILE* f = open_for_writing(path);
    REQUIRE(f != nullptr);
    CHECK(std::fwrite(text.data(), 1, text.size(), f) == text.size());
    CHECK(std::fclose(f) == 0);
}

}  // namespace

TEST_CASE("open_for_writing creates, fills an empty file, and replaces a longer one") {
    TempDir dir;
    write_with(dir.file("new"), "abc");
    CHECK(read_all(dir.file("new")) == "abc");
    const std::string temp = make_temp_beside(dir.file("out"));
    CHECK(read_all(temp).empty());
    write_with(temp, "hello");
    CHECK(read_all(temp) == "hello");
    write_with(temp, "hi");  // a shorter text leaves nothing of the old one
    CHECK(read_all(temp) == "hi");
    errno = 0;
    CHECK(open_for_writing(dir.file("missing/x")) == nullptr);
    CHECK(errno == ENOENT);
}
